"""mosaic-it eval --backend llamacpp: a .gguf file made by llama.cpp's own converter from a
real (tiny) transformers model, answered by llama.cpp, compared with the transformers backend
on the same file and the same prompts.

llama.cpp's converter is not in any wheel: it is in llama-cpp-python's sdist
(``vendor/llama.cpp/convert_hf_to_gguf.py``, which needs ``gguf-py`` beside it). CI unpacks it
and names it in ``LLAMA_CPP_CONVERTER``; without it these tests skip and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic_it.cli.main import main

from ..conftest import needs

CONVERTER = os.environ.get("LLAMA_CPP_CONVERTER", "")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """builtin:tiny-llama saved by transformers and converted to f32 by llama.cpp."""
    needs("llama_cpp")
    needs("torch")
    needs("gguf")
    if not Path(CONVERTER).is_file():
        pytest.skip(
            "needs llama.cpp's converter: unpack llama-cpp-python's sdist and set "
            "LLAMA_CPP_CONVERTER to its vendor/llama.cpp/convert_hf_to_gguf.py (.ci/run does)"
        )
    from mosaic_it.apps.model_source import resolve_model
    from mosaic_it.apps.models import load_model, load_tokenizer_for

    torch = needs("torch")
    where = tmp_path_factory.mktemp("tiny")
    source = resolve_model("builtin:tiny-llama")
    model = load_model(source)
    torch.manual_seed(0)
    with torch.no_grad():  # weights far from their small initial values: answers that differ
        for name, p in model.named_parameters():  # from prompt to prompt, not one token repeated
            if "norm" not in name:
                p.normal_(0.0, 0.35)
    model.save_pretrained(where / "hf")
    load_tokenizer_for(source).save_pretrained(where / "hf")
    out = where / "tiny-f32.gguf"
    env = {**os.environ, "PYTHONPATH": str(Path(CONVERTER).parent / "gguf-py")}
    done = subprocess.run(
        [sys.executable, CONVERTER, str(where / "hf"), "--outtype", "f32", "--outfile", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "eval.jsonl"
    assert main(["make-eval", "builtin:example", str(path), "--n", "12", "-q"]) == 0
    return path


def _answers(path: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["id"]: r["response"] for r in rows}


def _eval(backend: str, model: Path, eval_set: Path, responses: Path, *more: str) -> int:
    return main(
        [
            "eval",
            "--backend",
            backend,
            "--model",
            str(model),
            "--eval-set",
            str(eval_set),
            "--prompt-format",
            "vicuna",
            "--max-new-tokens",
            "24",
            "--threads",
            "1",
            "--responses",
            str(responses),
            "-q",
            *more,
        ]
    )


def test_llamacpp_answers_every_item_like_transformers(tiny_gguf, eval_set, tmp_path, capsys):
    mine, theirs = tmp_path / "llamacpp.jsonl", tmp_path / "transformers.jsonl"
    assert _eval("llamacpp", tiny_gguf, eval_set, mine, "--out", str(tmp_path / "t.json")) == 0
    assert _eval("transformers", tiny_gguf, eval_set, theirs, "--batch-size", "1") == 0
    a, b = _answers(mine), _answers(theirs)
    items = len(eval_set.read_text(encoding="utf-8").splitlines())
    assert set(a) == set(b) and len(a) == items
    assert len(set(a.values())) >= items // 2  # answers that differ: agreement means something
    same = sum(a[k] == b[k] for k in a)
    # the same weights (f32 both), prompt ids and greedy choice: only the order of the sums
    # differs, which can swap two near-equal logits now and then
    assert same >= items - 1, f"{same}/{items} answers identical"
    run = json.loads((tmp_path / "t.json").read_text())["run"]
    assert run["backend"] == "llamacpp" and run["gguf_file"] == tiny_gguf.name
    assert run["generation"]["tokens_generated"] > 0


def test_llamacpp_is_deterministic_and_resumes(tiny_gguf, eval_set, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _eval("llamacpp", tiny_gguf, eval_set, first) == 0
    assert _eval("llamacpp", tiny_gguf, eval_set, second) == 0
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text(encoding="utf-8").splitlines()
    first.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    assert _eval("llamacpp", tiny_gguf, eval_set, first, "--resume") == 0
    assert _answers(first) == _answers(second)


def test_llamacpp_refuses_a_model_that_is_not_gguf(tmp_path, eval_set, capsys):
    needs("llama_cpp")
    needs("torch")
    code = _eval("llamacpp", Path("builtin:tiny-llama"), eval_set, tmp_path / "r.jsonl")
    assert code == 2
    err = capsys.readouterr().err
    assert "runs a .gguf file" in err and "convert_hf_to_gguf.py" in err
    assert "Traceback" not in err


def test_llamacpp_answers_a_second_turn_like_transformers(tiny_gguf, tmp_path):
    """mosaic-it answer --backend llamacpp: the second turn is asked after the model's own first
    answer, in the same prompt format, and both turns equal the transformers backend's."""
    prompts = tmp_path / "two.jsonl"
    rows = [{"id": f"c{i}", "turns": [f"Say {w}.", "Again, longer."]} for i, w in enumerate("ab")]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {}
    for backend in ("llamacpp", "transformers"):
        out = tmp_path / f"{backend}.jsonl"
        args = ["answer", str(prompts), "--backend", backend, "--model", str(tiny_gguf)]
        args += ["--prompt-format", "vicuna", "--max-new-tokens", "12"]
        assert main([*args, "--responses", str(out), "-q"]) == 0
        got[backend] = _answers(out)
    assert set(got["llamacpp"]) == {"c0", "c0#2", "c1", "c1#2"}
    assert got["llamacpp"] == got["transformers"]
