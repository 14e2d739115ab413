"""README's evaluation pipeline, for seeds 1-50, on the real English and Chinese demos: split,
make-eval, make-rl-prompts never fail, and every item they write verifies against its own
prompt (the reader splits the prompt into the instructions its spec counts).

README's commands, called in two worker processes (one tokenizer and rule pack in each)::

    mosaic-it split D train.json heldout.json --held-out 300 --seed S
    mosaic-it make-eval heldout.json eval.jsonl --n 240 --seed S --max-instructions 4
    mosaic-it make-rl-prompts train.json rl.jsonl --held-out heldout.json --n 60 --seed S

(make-rl-prompts with its default of up to 10 instructions, 60 rows rather than README's
2,000 so that 100 pipelines take minutes, not hours.)
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from mosaic_it import load_rule_pack, load_tokenizer, read_records
from mosaic_it.apps.make_eval import make_eval
from mosaic_it.apps.rl_prompts import make_rl_prompts
from mosaic_it.apps.split import held_out_count, split_indices
from mosaic_it.verifier.checks import verify

from ..data_paths import CHINESE_DEMO, ENGLISH_DEMO, HOW_TO_GET, real_data

SEEDS = range(1, 51)
_shared: dict = {}  # each worker process's records, tokenizer and rule pack, loaded once


def _load(path: str) -> None:
    _shared.update(records=list(read_records(path)), tokenizer=load_tokenizer())
    _shared["pack"] = load_rule_pack()


def _pipeline(seed: int) -> list[str]:
    """README's pipeline for one seed: what failed, in words (nothing when all holds)."""
    records, tokenizer, pack = _shared["records"], _shared["tokenizer"], _shared["pack"]
    held = split_indices(len(records), held_out_count(len(records), 300), seed)
    train = [r for i, r in enumerate(records) if i not in held]
    held_out = [r for i, r in enumerate(records) if i in held]
    try:
        evalset = make_eval(
            held_out, 240, seed=seed, max_instructions=4, tokenizer=tokenizer, pack=pack
        )
        rows, _, _ = make_rl_prompts(train, held_out, 60, seed=seed, tokenizer=tokenizer, pack=pack)
    except Exception as exc:  # every failure is collected, then all are shown
        return [f"seed {seed}: {type(exc).__name__}: {exc}"]
    if not (evalset.items and rows):
        return [f"seed {seed}: nothing made ({evalset.notes})"]
    written = [(i["prompt"], i["reference"], i["mosaic"]) for i in evalset.items]
    written += [(r["prompt"][-1]["content"], r["reference"], r["mosaic"]) for r in rows]
    failures = []
    for prompt, reference, spec in written:
        verdict = verify(spec, reference, prompt=prompt, pack=pack)
        if not verdict.passed:
            failures.append(f"seed {seed}: {spec['rule']}: {verdict.reasons()}")
    return failures


@pytest.mark.long
@pytest.mark.parametrize("name", [ENGLISH_DEMO, CHINESE_DEMO], ids=["english", "chinese"])
def test_readme_pipeline_holds_for_fifty_seeds(name):
    path = real_data(name)
    if not path.is_file():
        pytest.skip(f"{path} not found: {HOW_TO_GET}")
    # the seeds are independent: two processes share them (each seed's outcome is the same
    # in any process; the test's time halves on two cores)
    workers = min(2, len(os.sched_getaffinity(0)))
    with ProcessPoolExecutor(workers, initializer=_load, initargs=(str(path),)) as pool:
        failures = [f for found in pool.map(_pipeline, SEEDS) for f in found]
    assert not failures, "\n".join(failures)
