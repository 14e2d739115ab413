"""Golden outputs: the bytes a set of command lines writes, pinned by their SHA-256.

A change meant to keep behaviour (moving code, splitting modules, speeding up) must leave
every digest as it is. A change that alters outputs on purpose regenerates them with

    MOSAIC_IT_UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py

and says so in its commit message. Parquet files are digested by their rows (the file bytes
also hold the writer's version).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mosaic_it.cli.main import main

from ..chat_fixtures import qwen_dir  # noqa: F401  (a fixture)
from ..conftest import needs

GOLDEN = Path(__file__).parents[1] / "data" / "golden_outputs.json"
UPDATE = os.environ.get("MOSAIC_IT_UPDATE_GOLDEN") == "1"

# name -> (output file name, options); every run reads the bundled example
CASES: dict[str, tuple[str, list[str]]] = {
    "default": ("out.jsonl", []),
    "json-list": ("out.json", []),
    "sharegpt": ("out.jsonl", ["--output-format", "sharegpt"]),
    "messages-keep": (
        "out.jsonl",
        ["--output-format", "messages", "--keep-originals", "--keep-multiturn"],
    ),
    "prompt-completion": ("out.jsonl", ["--output-format", "prompt-completion"]),
    "parquet-keep": ("out.parquet", ["--keep-originals"]),
    "fix-max": ("out.jsonl", ["--wrap-mode", "fix_max", "--max-tokens", "1024"]),
    "exp-seed7": ("out.jsonl", ["--wrap-mode", "exp", "--seed", "7", "--epochs", "2"]),
    "max-length": ("out.jsonl", ["--wrap-mode", "max_length", "--max-tokens", "4096"]),
    "chatml-permute": ("out.jsonl", ["--template", "chatml", "--strategies", "format+permute"]),
    "none-maskout": ("out.jsonl", ["--template", "none", "--strategies", "format+maskout"]),
    "workers-1": ("out.jsonl", ["--workers", "1"]),
    "workers-2": ("out.jsonl", ["--workers", "2"]),
    "auto-qwen": (
        "out.jsonl",
        ["--template", "auto", "--tokenizer", "{qwen}", "--max-tokens", "1024"],
    ),
}
SAME_AS = {"workers-1": "default", "workers-2": "default"}  # the output is the same for any N


def digest(path: Path) -> str:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        data = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def run_case(name: str, tmp_path: Path, qwen: Path | None) -> str:
    file_name, options = CASES[name]
    options = [o.replace("{qwen}", str(qwen)) for o in options]
    out = tmp_path / name / file_name
    out.parent.mkdir()
    assert main(["mosaic", "builtin:example", str(out), "-q", *options]) == 0
    return digest(out)


@pytest.fixture(scope="module")
def golden() -> dict[str, str]:
    found = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
    yield found
    if UPDATE:
        GOLDEN.write_text(
            json.dumps(dict(sorted(found.items())), indent=2) + "\n", encoding="utf-8"
        )


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_keep_their_bytes(name, tmp_path, golden, request):
    if CASES[name][0].endswith(".parquet"):
        needs("pyarrow")
    qwen = request.getfixturevalue("qwen_dir") if "{qwen}" in " ".join(CASES[name][1]) else None
    got = run_case(name, tmp_path, qwen)
    if name in SAME_AS:
        want_name = SAME_AS[name]
        want = golden.get(want_name)
    else:
        want_name, want = name, golden.get(name)
        if UPDATE:
            golden[name] = got
            return
    assert want is not None, f"no golden digest for {want_name}: run with MOSAIC_IT_UPDATE_GOLDEN=1"
    assert got == want, f"{name}: output changed (see the module docstring)"
