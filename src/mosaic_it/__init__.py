"""mosaic-it: Mosaic-IT instruction-tuning augmentation (compositional, teacher-free).

The names below are imported when first used (PEP 562), so that ``import mosaic_it`` is
cheap: the command line takes over the signals that end a run (:mod:`mosaic_it.signals`)
before the heavy modules load."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosaic_it.budget.tokenizer import Tokenizer, TokenizerError, load_tokenizer
    from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker, mosaic
    from mosaic_it.engine.summary import RunSummary
    from mosaic_it.errors import (
        EnvironmentFault,
        InputError,
        InternalError,
        MosaicItError,
        OptionError,
    )
    from mosaic_it.executors import create_executor, mosaic_file
    from mosaic_it.executors.job import Executor, JobResult, MosaicJob
    from mosaic_it.executors.local import LocalExecutor
    from mosaic_it.executors.ray import RayExecutor
    from mosaic_it.io.jsonfiles import write_records
    from mosaic_it.io.readers import read_records
    from mosaic_it.method.pack import RulePack, RulePackError
    from mosaic_it.method.rulepack import load_rule_pack
    from mosaic_it.method.strategies.base import Check
    from mosaic_it.records import MosaicSpec, Numbering, Record, Sample, SpecError, Tags
    from mosaic_it.verifier.checks import Verdict, verify

from mosaic_it.version import __version__ as __version__

_HOMES = {
    "mosaic_it.budget.tokenizer": ("Tokenizer", "TokenizerError", "load_tokenizer"),
    "mosaic_it.engine.mosaicker": ("MosaicConfig", "Mosaicker", "mosaic"),
    "mosaic_it.engine.summary": ("RunSummary",),
    "mosaic_it.errors": (
        "EnvironmentFault",
        "InputError",
        "InternalError",
        "MosaicItError",
        "OptionError",
    ),
    "mosaic_it.executors": ("create_executor", "mosaic_file"),
    "mosaic_it.executors.job": ("Executor", "JobResult", "MosaicJob"),
    "mosaic_it.executors.local": ("LocalExecutor",),
    "mosaic_it.executors.ray": ("RayExecutor",),
    "mosaic_it.io.jsonfiles": ("write_records",),
    "mosaic_it.io.readers": ("read_records",),
    "mosaic_it.method.pack": ("RulePack", "RulePackError"),
    "mosaic_it.method.rulepack": ("load_rule_pack",),
    "mosaic_it.method.strategies.base": ("Check",),
    "mosaic_it.records": ("MosaicSpec", "Numbering", "Record", "Sample", "SpecError", "Tags"),
    "mosaic_it.verifier.checks": ("Verdict", "verify"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Check",
    "EnvironmentFault",
    "Executor",
    "InputError",
    "InternalError",
    "JobResult",
    "LocalExecutor",
    "MosaicConfig",
    "MosaicItError",
    "MosaicJob",
    "MosaicSpec",
    "Mosaicker",
    "Numbering",
    "OptionError",
    "RayExecutor",
    "Record",
    "RulePack",
    "RulePackError",
    "RunSummary",
    "Sample",
    "SpecError",
    "Tags",
    "Tokenizer",
    "TokenizerError",
    "Verdict",
    "create_executor",
    "load_rule_pack",
    "load_tokenizer",
    "mosaic",
    "mosaic_file",
    "read_records",
    "verify",
    "write_records",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mosaic_it' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME_OF])
