"""Which process of a (multi-GPU, ``accelerate launch``) training run this is; one process
when accelerate is not installed."""

from __future__ import annotations


def world_size() -> int:
    try:
        from accelerate import PartialState
    except ImportError:
        return 1
    return PartialState().num_processes


def is_main() -> bool:
    try:
        from accelerate import PartialState
    except ImportError:
        return True
    return PartialState().is_main_process


def rank() -> int:
    try:
        from accelerate import PartialState
    except ImportError:
        return 0
    return PartialState().process_index
