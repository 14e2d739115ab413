"""Facts derived from a tokenizer's vocabulary, kept in the cache between runs.

The folding proofs read a tokenizer's whole vocabulary once a run: the hard pairs of Gemma 3's
262,144 pieces (:func:`.hard_pairs.pretoken_scheme`) cost 0.35 s to 1 s of CPU, the pairs of
pieces of the bundled tokenizer's 32,000 (:func:`.word_local.supports`) about 0.1 s, most of it
``get_vocab`` and a Python loop over every piece. What they find depends on the vocabulary
alone, so it is kept in ``cache_root()/vocabulary/<fact>-<key>.json`` and read back on the
next run: choosing the counter then costs 0.02 s instead of 0.7 s for Gemma 3, 0.04 s instead
of 0.12 s for the bundled tokenizer (``benchmarks/bench_vocab_facts.py``).

The key is the SHA-256 of the fact's name and version (raise it when the derivation changes),
the ``tokenizers`` library's version and the tokenizer's :attr:`.tokenizer.Tokenizer.digest`
(what its backend was built from: a ``tokenizer.json``'s bytes, a conversion's own key), never
a name or a path, so an edited tokenizer never reads a stale entry. A tokenizer without a
digest (one made in code around a backend) has its facts derived every time. What the
proofs read besides the vocabulary (added tokens, normaliser, settings of the object) is read
from the tokenizer on every run, not kept.

The cache only saves time, as :mod:`.converted`'s does: an entry that cannot be read or does
not hold what is expected is derived again and replaced, a cache that cannot be written is
left alone, and an entry is one file written under a temporary name and renamed
(:func:`mosaic_it.cache.keep`), so two runs at once each see a whole entry or none.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import tokenizers

from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.cache import cache_root, keep

Fact = TypeVar("Fact")


def vocabulary_fact(
    tokenizer: Tokenizer,
    name: str,
    version: int,
    derive: Callable[[], Fact],
    to_json: Callable[[Fact], object],
    from_json: Callable[[object], Fact],
) -> Fact:
    """The fact ``name`` of this tokenizer's vocabulary: read back from the cache, else
    ``derive()``'s, kept for the next run.

    ``to_json`` writes the fact as JSON values; ``from_json`` reads them back and raises
    (any exception) on anything that is not what ``to_json`` writes, so that the entry is
    derived again.
    """
    if tokenizer.digest is None:
        return derive()
    key = hashlib.sha256(
        f"mosaic-it vocabulary fact {name} {version}\0tokenizers {tokenizers.__version__}\0"
        f"{tokenizer.digest}".encode()
    ).hexdigest()
    path = cache_root() / "vocabulary" / f"{name}-{key[:32]}.json"
    found = _read(path, key, from_json)
    if found is not None:
        return found[0]
    fact = derive()
    # a read-only or full cache is left alone: the next run derives it again
    keep(path, json.dumps({"key": key, "fact": to_json(fact)}, ensure_ascii=False))
    return fact


def _read(path: Path, key: str, from_json: Callable[[object], Fact]) -> tuple[Fact] | None:
    collecting = gc.isenabled()
    gc.disable()  # every object read is kept: collecting while they are made only costs time
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry["key"] == key:
            return (from_json(entry["fact"]),)
    except Exception:  # noqa: BLE001 - missing, partial or unreadable: derived again, replaced
        pass
    finally:
        if collecting:
            gc.enable()
    return None
