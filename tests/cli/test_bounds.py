"""Numeric options out of bounds are refused before any work, in one line naming the option, the
bound and why; an unexpected error is reported as a bug in one line, not a traceback."""

from __future__ import annotations

import time

import pytest

from mosaic_it.cli.main import EXIT_BUG, TRACEBACK_VARIABLE, bug_message, main
from mosaic_it.errors import InternalError
from mosaic_it.limits import bound

# (the command line, with SRC and OUT for the paths; what its one line must say)
ALL = "must be at least 1 and at most"
EVAL = "--model builtin:tiny-llama --eval-set SRC"
REFUSED = [
    ("mosaic SRC OUT.jsonl --epochs 1000000000", f"epochs: {ALL} 10000 (each epoch writes"),
    ("mosaic SRC OUT.jsonl --max-tokens 0", "max_tokens: must be at least 1"),
    ("split SRC OUT.t.json OUT.h.json --held-out inf", "--held-out: must be a finite number"),
    ("split SRC OUT.t.json OUT.h.json --held-out nan", "--held-out: must be a finite number"),
    ("split SRC OUT.t.json OUT.h.json --held-out 0", "--held-out: must be above 0"),
    ("stats SRC --max-tokens 0", "--max-tokens: must be at least 1"),
    ("make-eval SRC OUT.jsonl --n 0", f"n: {ALL} 1000000"),
    ("make-eval SRC OUT.jsonl --n 1000000000", f"n: {ALL} 1000000 (the whole set is held"),
    ("make-eval SRC OUT.jsonl --max-instructions 1000", "max_instructions: must be at least 2"),
    ("make-rl-prompts SRC OUT.jsonl --held-out SRC --max-instructions 1", "max_instructions"),
    ("cost SRC SRC --no-time --original-epochs 1000000000", f"--original-epochs: {ALL} 10000"),
    ("cost SRC SRC --measure-repeats 0", f"--measure-repeats: {ALL} 100"),
    ("mosaic SRC OUT.jsonl --workers 100000 --force-workers", "--workers: must be at most 1024"),
    ("mosaic SRC OUT --engine ray --shards -1", "--shards: must be at least 0 and at most"),
    (f"eval {EVAL} --sample --temperature -1", "--temperature: must be above 0 and at most 100"),
    (f"eval {EVAL} --sample --top-p 1.5", "--top-p: must be above 0 and at most 1"),
    (f"eval {EVAL} --max-new-tokens 0", "--max-new-tokens: must be at least 1"),
]


@pytest.mark.parametrize("line, said", REFUSED, ids=[line for line, _ in REFUSED])
def test_out_of_bounds_options_are_refused_before_work(line, said, alpaca_file, tmp_path, capsys):
    src = alpaca_file([{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(6)])
    out = tmp_path / "out"
    argv = [w.replace("SRC", str(src)).replace("OUT", str(out)) for w in line.split()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not list(tmp_path.glob("out*"))  # nothing written


def test_an_impossible_budget_is_refused_at_once_naming_the_smallest(tmp_path, capsys):
    """--max-tokens 1 used to be refused after 45 s of draws: the smallest item is counted first
    and the refusal says which budget it needs; a budget well under that is refused too."""
    t0 = time.perf_counter()
    out = tmp_path / "e.jsonl"
    assert main(["make-eval", "builtin:example", str(out), "--max-tokens", "1", "-q"]) == 2
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert "max_tokens: 1 is too small for any item of these records" in err, err
    smallest = int(err.rsplit("give at least ", 1)[1].split()[0])
    assert seconds < 10 and not out.exists()  # a generous bound for a loaded machine
    argv = ["make-eval", "builtin:example", str(out), "--n", "4", "--max-instructions", "2"]
    assert main([*argv, "--max-tokens", str(smallest - 10), "-q"]) == 2
    capsys.readouterr()


def test_bound_names_infinity_and_nan():
    for value in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^t: must be a finite number above 0, got"):
            bound("t", value, above=0)


def test_bound_says_why_and_wants_whole_numbers():
    with pytest.raises(ValueError, match=r"^n: must be a whole number \(a count\), got 2.5$"):
        bound("n", 2.5, at_least=1, whole=True, why="a count")
    with pytest.raises(ValueError, match=r"^x: must be a number, got '3'$"):
        bound("x", "3")  # type: ignore[arg-type]
    bound("n", 3, at_least=1, at_most=3, whole=True)  # within bounds: nothing said


def test_a_bug_is_one_line_saying_how_to_see_the_traceback():
    line = bug_message(InternalError("a composed sample does not verify:\nspec_consistent"))
    assert "\n" not in line and line.startswith("mosaic-it: bug: InternalError: a composed")
    assert f"{TRACEBACK_VARIABLE}=1" in line and EXIT_BUG == 1
