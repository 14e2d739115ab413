"""The bytes the application commands write, pinned by their SHA-256 (as tests/integration's
golden test pins those of mosaic-it mosaic): a change meant to keep behaviour (moving code,
splitting modules) must leave every digest as it is.

The digests were recorded with the code before the application modules were split by job.
Every run reads the bundled example (a copy, or a copy with system prompts) in a scratch
directory, with relative paths, so that no path of this machine is in an output.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from mosaic_it.cli.main import main
from mosaic_it.io.readers import example_path

PINNED = {
    "ev-vicuna.jsonl": "3135db8124cdb9f35c88a87d020d99fd97399e045332f369db87e96f156627d4",
    "bal-vicuna.json": "9fe6caa398757d64599eaf59924bcb6c9c3c3450ea2db587e2bce5a068b7cf4c",
    "ev-chatml.jsonl": "30f3343c822c036dff2e7fa713c667fef0579d9da5ef791e679580d5152b783e",
    "ev-none.jsonl": "1b8517e330fe22f17b885a2da86fcf348548fa33df565731300f08459a899af2",
    "ev-sys.jsonl": "2e53d8453ee1de414056ed56b86b2e9d0372aa723988ed9cc3b6269ed0b250ef",
    "rl-vicuna.jsonl": "9e48a1ecdeae75a2aa98370d708d14760e8ad70e5384d5786393afa839f44179",
    "score.json": "5a1f1ee5ed06c82ba73feff020c804f734c67e8a61c658e3cc231407961f6ab9",
    "cost.json": "eb338a3a9f78f7f0cd86447ff917b25bac22a12724af1462dd325e0aa812ccf1",
}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinned")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        shutil.copy(example_path(), "ex.jsonl")
        lines = (root / "ex.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (root / "held.jsonl").write_text("".join(lines[:40]), encoding="utf-8")
        with open("sys.jsonl", "w", encoding="utf-8") as out:
            for i, line in enumerate(lines):
                obj = json.loads(line)
                if i % 3:
                    obj["system"] = "You are terse." if i % 3 == 1 else "Answer as a pirate."
                out.write(json.dumps(obj) + "\n")
        q = ["-q"]
        assert main(["mosaic", "builtin:example", "mos.jsonl", "--epochs", "2", *q]) == 0
        for t in ("vicuna", "chatml", "none"):
            eval_args = ["--n", "40", "--max-instructions", "5", "--template", t]
            argv = ["make-eval", "builtin:example", f"ev-{t}.jsonl", *eval_args, *q]
            assert main([*argv, "--balance", f"bal-{t}.json"]) == 0
        sys_args = ["sys.jsonl", "ev-sys.jsonl", "--n", "30", "--max-instructions", "4", *q]
        assert main(["make-eval", *sys_args]) == 0
        rl_args = ["--n", "20", "--max-instructions", "4", "--template", "vicuna", *q]
        assert (
            main(
                ["make-rl-prompts", "ex.jsonl", "--held-out", "held.jsonl"]
                + ["rl-vicuna.jsonl", *rl_args]
            )
            == 0
        )
        with open("resp.jsonl", "w", encoding="utf-8") as out:
            for i, line in enumerate(open("ev-vicuna.jsonl", encoding="utf-8")):
                item = json.loads(line)
                if i % 3:
                    answer = item["reference"] if i % 2 else item["reference"][:40]
                    out.write(json.dumps({"id": item["id"], "response": answer}) + "\n")
        assert main(["score", "ev-vicuna.jsonl", "resp.jsonl", "--out", "score.json"]) == 0
        assert main(["cost", "ex.jsonl", "mos.jsonl", "--no-time", "--json", "cost.json"]) == 0
    return root


@pytest.mark.parametrize("name", sorted(PINNED))
def test_application_outputs_keep_their_bytes(outputs, name):
    assert _digest(outputs / name) == PINNED[name], name
