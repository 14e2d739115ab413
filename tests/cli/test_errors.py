"""The user's errors and bugs: only a MosaicItError (bad input, bad options, the environment)
exits 2 with its one line; anything else raised inside the library is a bug, exit 1, one line
saying how to see the traceback (``--debug``, or ``MOSAIC_IT_TRACEBACK=1``)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic_it import errors
from mosaic_it.apps import split as split_app
from mosaic_it.cli.main import EXIT_BAD_INPUT, EXIT_BUG, EXIT_WORKER_DIED, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def records(tmp_path: Path) -> list[str]:
    src = tmp_path / "in.jsonl"
    rows = [{"instruction": f"say {i}", "output": f"{i}"} for i in range(10)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ["split", str(src), str(tmp_path / "train.jsonl"), str(tmp_path / "held.jsonl")]


def _a_bug(*args: object) -> None:
    raise ValueError("an index past the end")  # as a bug in the library would


def test_a_bad_option_still_exits_2_with_its_message(records, capsys):
    assert main([*records, "--held-out", "10"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == "mosaic-it: error: --held-out 10 of 10 records leaves nothing to train on\n"


def test_a_value_error_inside_the_library_is_a_bug(records, monkeypatch, capsys):
    monkeypatch.setattr(split_app, "split_indices", _a_bug)
    assert main([*records, "--held-out", "2"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("mosaic-it: bug: ValueError: an index past the end (a bug in")
    assert "--debug" in err and "MOSAIC_IT_TRACEBACK=1" in err


@pytest.mark.parametrize("how", ["--debug", "MOSAIC_IT_TRACEBACK"])
def test_debug_shows_the_traceback(records, monkeypatch, capsys, how):
    monkeypatch.setattr(split_app, "split_indices", _a_bug)
    argv = [*records, "--held-out", "2"]
    if how == "--debug":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("MOSAIC_IT_TRACEBACK", "1")
    assert main(argv) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in _a_bug" in err, err
    assert err.splitlines()[-1].startswith("mosaic-it: bug: ValueError: an index past the end")


def test_debug_shows_where_a_users_error_came_from_and_keeps_its_status(records, capsys):
    assert main(["--debug", *records, "--held-out", "10"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" in err and "OptionError" in err
    assert err.splitlines()[-1] == (
        "mosaic-it: error: --held-out 10 of 10 records leaves nothing to train on"
    )


def test_an_os_error_is_the_environments_and_one_only_a_bug_causes_is_a_bug(
    records, monkeypatch, capsys
):
    def disk_full(path: str, rows: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(split_app, "write_records", disk_full)
    assert main([*records, "--held-out", "2"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == f"mosaic-it: error: {records[2]}: no space left on the device\n"

    def closed(path: str, rows: object) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(split_app, "write_records", closed)
    assert main([*records, "--held-out", "2"]) == EXIT_BUG
    assert capsys.readouterr().err.startswith("mosaic-it: bug: OSError: [Errno 9]")


def test_the_library_errors_are_the_users_and_still_value_errors():
    from mosaic_it.apps.model_source import ModelError
    from mosaic_it.budget.gguf import GGUFError
    from mosaic_it.budget.sentencepiece_bpe import SentencePieceError
    from mosaic_it.budget.templates import TemplateError
    from mosaic_it.budget.tokenizer import TokenizerError
    from mosaic_it.cli.recipe import RecipeError
    from mosaic_it.engine.processes import WorkerDied
    from mosaic_it.errors import InputError
    from mosaic_it.io.outputs import PathError
    from mosaic_it.method.compose import LayoutError
    from mosaic_it.method.pack import RulePackError
    from mosaic_it.records import SpecError

    valueish = [ModelError, GGUFError, SentencePieceError, TemplateError, TokenizerError]
    valueish += [RecipeError, InputError, PathError, LayoutError, RulePackError, SpecError]
    for cls in valueish:
        assert issubclass(cls, errors.MosaicItError) and issubclass(cls, ValueError), cls
    assert InputError is errors.InputError
    assert issubclass(WorkerDied, errors.EnvironmentFault)
    assert WorkerDied.exit_status == EXIT_WORKER_DIED
    assert not issubclass(errors.InternalError, errors.MosaicItError)
    assert errors.MosaicItError.exit_status == EXIT_BAD_INPUT


def test_the_program_reports_a_bug_in_one_line_and_exits_1(tmp_path, records):
    """The installed program's way out (entry, os._exit): the status and the one line."""
    code = (
        "import sys; from mosaic_it.apps import split; from mosaic_it.cli.main import entry\n"
        "def bug(*a): raise KeyError('x')\n"
        "split.split_indices = bug; sys.argv = ['mosaic-it', *sys.argv[1:]]; entry()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [*records, "--held-out", "2"]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == EXIT_BUG and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("mosaic-it: bug: KeyError: 'x'")
    debug = subprocess.run(
        [sys.executable, "-c", code, "--debug", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert debug.returncode == EXIT_BUG and "Traceback" in debug.stderr, debug.stderr


def test_a_recipe_nested_too_deeply_is_the_users_error(tmp_path, capsys):
    """The parsers' RecursionError is met where the input is read (no longer at the top,
    where a bug's infinite recursion would have read as the user's input)."""
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("a: " + "[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert main(["mosaic", "--config", str(recipe)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"mosaic-it: error: {recipe}: nested too deeply to read\n"
