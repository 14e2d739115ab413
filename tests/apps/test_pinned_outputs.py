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
from mosaic_it.io.files import example_path

PINNED = {
    "ev-vicuna.jsonl": "5b30dda93e16a52e5e21f694ed9c7a2f8213942344a0443e86f5088816adff0c",
    "bal-vicuna.json": "884b2fdfb2d5ebf049427388a8f832f6a55f2efe1d07b369a233430e21ba9c55",
    "ev-chatml.jsonl": "452dd52013c9d92346884338dbe07e8e1d37cc54c8aae647e289bf92ed58de98",
    "ev-none.jsonl": "180b8d0786eaa793d1dfbbd3e086381cbefd4d8d89e35c6d5d026f7a75ab7fcf",
    "ev-sys.jsonl": "59a6488ae8cc6101db046f7ff64c218b4fb3d6673acfe630679d8ac366cf4d38",
    "rl-vicuna.jsonl": "cb2ce23d3bd8bef0fce975107832219f3791730848e65430879028b0829872dc",
    "score.json": "ef47a24324b70e297b842218a711d3cb5d5c1d50032d6e2443372aeddb5361c5",
    "cost.json": "3f20168f77f32952dccb8d4c7f7f6025222ad15bf8b04ec28f437eb6c56e8e97",
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
