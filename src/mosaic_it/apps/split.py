"""Hold records out of training: ``mosaic-it split INPUT TRAIN HELDOUT --held-out N``.

A seeded draw of N records (or a fraction of them) goes to the held-out file, the rest to the
training file, each in the input's order and format (the records are copied as they are), so
that ``make-eval`` builds its evaluation set from records the model was not trained on.
"""

from __future__ import annotations

from typing import Any

from mosaic_it.errors import OptionError
from mosaic_it.io.jsonfiles import write_records
from mosaic_it.io.readers import iter_raw
from mosaic_it.limits import bound
from mosaic_it.rng import Rng


def check_held_out(held_out: float) -> None:
    """Refuse a ``--held-out`` that no input can satisfy (zero, negative, infinite, NaN)."""
    bound("--held-out", held_out, above=0, why="a count of records, or a fraction below 1")


def held_out_count(total: int, held_out: float) -> int:
    """``held_out`` as a count: a whole number is a count, a number below 1 a fraction."""
    check_held_out(held_out)
    count = round(total * held_out) if held_out < 1 else int(held_out)
    if held_out >= 1 and held_out != int(held_out):
        raise OptionError(
            f"--held-out is a count (a whole number) or a fraction below 1, got {held_out:g}"
        )
    if not 0 < count < total:
        raise OptionError(
            f"--held-out {held_out:g} of {total} records leaves "
            f"{'nothing to hold out' if count <= 0 else 'nothing to train on'}"
        )
    return count


def split_indices(total: int, count: int, seed: int) -> set[int]:
    """The indices of the ``count`` held-out records among ``total``: the same for one seed."""
    order = list(range(total))
    Rng(seed, "split").shuffle(order)
    return set(order[:count])


def split(
    source: str,
    train: str,
    held_out_path: str,
    held_out: float,
    seed: int,
    data_split: str | None = None,
) -> tuple[int, int]:
    """Write the two files; returns (training records, held-out records). The command line
    checks and locks the paths first (:func:`mosaic_it.io.outputs.guard`)."""
    check_held_out(held_out)  # before reading: nothing to read for a count no input has
    objects: list[Any] = [obj for _, _, obj in iter_raw(source, data_split)]
    held = split_indices(len(objects), held_out_count(len(objects), held_out), seed)
    n_train = write_records(train, (o for i, o in enumerate(objects) if i not in held))
    n_held = write_records(held_out_path, (o for i, o in enumerate(objects) if i in held))
    return n_train, n_held
