"""Bounds of the numeric options, each with the reason for it.

Every door (the command line, a recipe, a Python call) builds a config object whose checks call
:func:`bound`, so an impossible or runaway request (a billion epochs, an infinite count, a
negative temperature) is refused before any work, in one line saying why.
"""

from __future__ import annotations

import math

from mosaic_it.errors import OptionError

# the most epochs of a mosaic run: each epoch writes every record once more (the paper uses 4)
MAX_MOSAIC_EPOCHS = 10_000
# the most evaluation items or RL rows: the whole set is held in memory until it is written
# (a few kilobytes an item)
MAX_ITEMS = 1_000_000
# the most instructions of one evaluation item: a larger k gets cells of its own that only
# records the budget cannot hold would fill
MAX_EVAL_INSTRUCTIONS = 100
# the most training epochs, and epochs of the cost comparison (each is a pass over the data,
# planned or counted one at a time)
MAX_TRAIN_EPOCHS = 10_000
# the most worker processes of the local engine (with --force-workers): each is a forked copy
MAX_WORKERS = 1024
# the most shards of the ray engine: each is a task and an output file of its own
MAX_SHARDS = 100_000
# the most timed repeats of one measured step of mosaic-it cost (each is a training step)
MAX_REPEATS = 100
# the highest sampling temperature: the logits are divided by it, and far above a few units the
# distribution is uniform noise
MAX_TEMPERATURE = 100.0


def bound(
    name: str,
    value: float,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    whole: bool = False,
    why: str = "",
) -> None:
    """Raise ValueError ("NAME: must be ... (why), got VALUE") unless ``value`` is a finite
    number within the bounds given (and a whole number with ``whole``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{name}: must be a number, got {value!r}")
    low = f"at least {_shown(at_least)}" if at_least is not None else ""
    low = f"above {_shown(above)}" if above is not None else low
    high = f"at most {_shown(at_most)}" if at_most is not None else ""
    high = f"below {_shown(below)}" if below is not None else high
    wanted = " and ".join(part for part in (low, high) if part)
    finite = isinstance(value, int) or math.isfinite(value)
    if not finite or not (
        (at_least is None or value >= at_least)
        and (above is None or value > above)
        and (at_most is None or value <= at_most)
        and (below is None or value < below)
    ):
        wanted = wanted if finite else f"a finite number {wanted}".rstrip()
    elif whole and value != int(value):
        wanted = "a whole number"
    else:
        return
    reason = f" ({why})" if why else ""
    raise OptionError(f"{name}: must be {wanted}{reason}, got {_shown(value)}")


def _shown(value: float) -> str:
    """A bound or value as a message shows it: whole numbers in full, others in short."""
    if isinstance(value, int) or (
        math.isfinite(value) and value == int(value) and abs(value) < 1e15
    ):
        return str(int(value))
    return f"{value:g}"
