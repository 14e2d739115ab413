"""Never lose a user's data: hostile paths, environment faults, locks, resume fingerprints.

Every case of the table runs the real command line in a scratch directory holding an input,
an unrelated file and whatever the case sets up, then checks the exit status, the message,
and that every file that was there before is byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mosaic_it.cli.main import build, main
from mosaic_it.io.fingerprint import content_digest
from mosaic_it.io.outputs import MARKER, Output, PathError, guard, lock_path_for

from ..conftest import needs

RECORDS = [
    {
        "instruction": f"Write sentence number {i} about rivers.",
        "input": "" if i % 3 else "calm",
        "output": f"Rivers flow to the sea, sentence {i}. " * (1 + i % 4),
    }
    for i in range(40)
]
SRC = Path(__file__).resolve().parents[2] / "src"


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **extra,
    }


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` with its bytes (FIFOs and devices by name only)."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or p.is_dir():
            continue
        files[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else b"<special>"
    return files


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working directory with d.json (the input), notes.txt (unrelated) and r.jsonl."""
    (tmp_path / "d.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (tmp_path / "r.jsonl").write_text('{"id": "eval-0", "response": "x"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- setups


def _foreign_dir(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "keep.txt").write_text("not the tool's\n", encoding="utf-8")


def _parent_of_input(root: Path) -> None:
    (root / "p" / "data").mkdir(parents=True)
    (root / "p" / "data" / "in.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (root / "p" / "notes.txt").write_text("x\n", encoding="utf-8")


def _symlink(root: Path) -> None:
    (root / "link.json").symlink_to(root / "d.json")


def _hardlink(root: Path) -> None:
    os.link(root / "d.json", root / "hard.json")


def _fifo(root: Path) -> None:
    os.mkfifo(root / "pipe.json")


def _deep(root: Path) -> None:
    (root / "deep.jsonl").write_text("[" * 200_000 + "]" * 200_000 + "\n", encoding="utf-8")


def _surrogate(root: Path) -> None:
    lines = [json.dumps(r) for r in RECORDS[:10]]
    lines[3] = '{"instruction": "bad \\ud800 text", "output": "x"}'
    (root / "s.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _not_json_line(root: Path) -> None:
    lines = [json.dumps(r) for r in RECORDS[:10]]
    lines[4] = "this line is not JSON"
    (root / "n.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _bom(root: Path) -> None:
    (root / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(RECORDS).encode())
    (root / "bom.jsonl").write_bytes(
        b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in RECORDS).encode()
    )


def _empty(root: Path) -> None:
    (root / "empty.json").write_text("[]", encoding="utf-8")


def _bad_rules(placeholder: str):
    """The bundled pack with its first "{positions}" phrasing given ``placeholder`` instead."""

    def setup(root: Path) -> None:
        from mosaic_it.method.rulepack import default_rules_path

        pack = json.loads(default_rules_path().read_text(encoding="utf-8"))

        def swap(node: object) -> bool:
            items = (
                node.items()
                if isinstance(node, dict)
                else enumerate(node)
                if isinstance(node, list)
                else ()
            )
            for key, value in items:
                if isinstance(value, str) and "{positions}" in value:
                    node[key] = value.replace("{positions}", placeholder)  # type: ignore[index]
                    return True
                if swap(value):
                    return True
            return False

        assert swap(pack["maskout"])
        (root / "rules.json").write_text(json.dumps(pack), encoding="utf-8")

    return setup


def _info_list(root: Path) -> None:
    (root / "info.json").write_text("[1, 2]", encoding="utf-8")


def _eval_set(root: Path) -> None:
    (root / "e.jsonl").write_text(
        '{"id": "eval-0", "prompt": "p", "mosaic": {}}\n', encoding="utf-8"
    )


def _nothing(root: Path) -> None:
    pass


M = ["mosaic"]
# (id, setup, argv, exit status, message part)
CASES = [
    (
        "output-is-parent-dir-of-input",
        _parent_of_input,
        M + ["p/data/in.json", "p"],
        2,
        "did not write",
    ),
    (
        "output-dir-with-files",
        lambda r: _foreign_dir(r, "results"),
        M + ["d.json", "results/"],
        2,
        "did not write",
    ),
    (
        "output-dir-named-jsonl",
        lambda r: (r / "x.jsonl").mkdir(),
        M + ["d.json", "x.jsonl"],
        2,
        "is an existing directory",
    ),
    ("output-equals-input", _nothing, M + ["d.json", "d.json"], 2, "same file as INPUT"),
    (
        "rejects-equals-input",
        _nothing,
        M + ["d.json", "o.jsonl", "--rejects", "d.json"],
        2,
        "--rejects d.json is the same file as INPUT",
    ),
    (
        "stats-equals-input",
        _nothing,
        M + ["d.json", "o.jsonl", "--stats", "d.json"],
        2,
        "--stats d.json is the same file as INPUT",
    ),
    (
        "rejects-equals-output",
        _nothing,
        M + ["d.json", "o.jsonl", "--rejects", "o.jsonl"],
        2,
        "name the same file",
    ),
    ("output-symlink-to-input", _symlink, M + ["d.json", "link.json"], 2, "same file as INPUT"),
    ("output-hardlink-of-input", _hardlink, M + ["d.json", "hard.json"], 2, "same file as INPUT"),
    (
        "output-dash-resume",
        _nothing,
        M + ["d.json", "-", "--resume"],
        2,
        "standard input or output",
    ),
    (
        "path-through-a-file",
        _nothing,
        M + ["d.json", "notes.txt/o.jsonl"],
        2,
        "notes.txt is a file",
    ),
    (
        "dataset-info-is-a-list",
        _info_list,
        M + ["d.json", "o.jsonl", "--dataset-info", "info.json"],
        2,
        "expected a JSON object",
    ),
    (
        "dataset-info-is-a-dir",
        lambda r: (r / "info").mkdir(),
        M + ["d.json", "o.jsonl", "--dataset-info", "info"],
        2,
        "is an existing directory",
    ),
    ("fifo-input", _fifo, M + ["pipe.json", "o.jsonl"], 2, "FIFO"),
    ("device-input", _nothing, M + ["/dev/zero", "o.jsonl"], 2, "character device"),
    ("deep-nesting", _deep, M + ["deep.jsonl", "o.jsonl"], 2, "nested too deeply"),
    ("lone-surrogate", _surrogate, M + ["s.jsonl", "o.jsonl"], 2, "lone surrogate"),
    ("not-json-line", _not_json_line, M + ["n.jsonl", "o.jsonl"], 2, "n.jsonl:5: invalid JSON"),
    (
        "negative-workers",
        _nothing,
        M + ["d.json", "o.jsonl", "--workers", "-1"],
        2,
        "--workers: must be 0",
    ),
    ("empty-input", _empty, M + ["empty.json", "o.jsonl"], 2, "holds no records"),
    (
        "all-rejected",
        _nothing,
        M + ["d.json", "o.jsonl", "--max-tokens", "1"],
        2,
        "none of the 40 records can be mosaicked (40 too long for --max-tokens 1",
    ),
    (
        "rule-format-spec",
        _bad_rules("{positions:>999999999}"),
        M + ["d.json", "o.jsonl", "--rules", "rules.json"],
        2,
        "rules.json: maskout.rules.FIX",
    ),
    (
        "rule-format-spec-named",
        _bad_rules("{positions:^40}"),
        M + ["d.json", "o.jsonl", "--rules", "rules.json"],
        2,
        "placeholder {positions:^40}",
    ),
    (
        "rule-conversion",
        _bad_rules("{positions!r}"),
        M + ["d.json", "o.jsonl", "--rules", "rules.json"],
        2,
        "placeholder {positions!r}",
    ),
    (
        "stats-report-is-data",
        _nothing,
        ["stats", "d.json", "--report", "d.json"],
        2,
        "--report d.json is the same file as DATA",
    ),
    (
        "stats-png-foreign-dir",
        lambda r: _foreign_dir(r, "plots"),
        ["stats", "d.json", "--png", "plots"],
        2,
        "did not write",
    ),
    ("stats-empty", _empty, ["stats", "empty.json"], 2, "no records"),
    (
        "make-eval-over-input",
        _nothing,
        ["make-eval", "d.json", "d.json"],
        2,
        "OUTPUT d.json is the same file as INPUT",
    ),
    (
        "make-eval-no-items",
        lambda r: (r / "one.json").write_text(json.dumps(RECORDS[:1])),
        ["make-eval", "one.json", "e.jsonl", "-q"],
        2,
        "no evaluation item could be made",
    ),
    (
        "score-out-is-eval",
        _eval_set,
        ["score", "e.jsonl", "r.jsonl", "--out", "e.jsonl"],
        2,
        "--out e.jsonl is the same file as EVAL",
    ),
    (
        "eval-responses-is-eval-set",
        _eval_set,
        [
            "eval",
            "--model",
            "builtin:tiny-llama",
            "--eval-set",
            "e.jsonl",
            "--responses",
            "e.jsonl",
            "--resume",
        ],
        2,
        "--responses e.jsonl is the same file as --eval-set",
    ),
    (
        "cost-json-is-input",
        _nothing,
        ["cost", "d.json", "r.jsonl", "--json", "d.json", "--no-time"],
        2,
        "--json d.json is the same file as ORIGINAL",
    ),
    (
        "train-foreign-output-dir",
        lambda r: _foreign_dir(r, "run"),
        ["train", "d.json", "--model", "builtin:tiny-llama", "--output-dir", "run"],
        2,
        "did not write",
    ),
    (
        "train-output-dir-is-data",
        _nothing,
        ["train", "d.json", "--model", "builtin:tiny-llama", "--output-dir", "d.json"],
        2,
        "exists and is not a directory",
    ),
    (
        "ray-foreign-output-dir",
        lambda r: _foreign_dir(r, "shards"),
        M + ["r.jsonl", "shards", "--engine", "ray"],
        2,
        "did not write",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(case, scratch, capsys):
    _, setup, argv, status, message = case
    if "--engine" in argv and argv[argv.index("--engine") + 1] == "ray":
        needs("ray")  # without Ray the run stops earlier, naming the extra
    setup(scratch)
    before = snapshot(scratch)
    assert main(argv) == status
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert snapshot(scratch) == before  # inputs and unrelated files untouched, nothing added


# (id, setup, argv, message part): runs that succeed, with their warning or note
ACCEPTED = [
    ("bom-json", _bom, M + ["bom.json", "o.jsonl", "--epochs", "1"], "samples"),
    ("bom-jsonl", _bom, M + ["bom.jsonl", "o.jsonl", "--epochs", "1"], "samples"),
    (
        "surrogate-skipped",
        _surrogate,
        M + ["s.jsonl", "o.jsonl", "--on-error", "skip"],
        "left out (invalid)  1",
    ),
    (
        "not-json-skipped",
        _not_json_line,
        M + ["n.jsonl", "o.jsonl", "--on-error", "skip"],
        "n.jsonl:5 (record 4): invalid JSON",
    ),
    (
        "too-many-workers",
        _nothing,
        M + ["d.json", "o.jsonl", "--workers", "4096"],
        "--workers 4096 is more than the",
    ),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_case(case, scratch, capsys):
    _, setup, argv, message = case
    setup(scratch)
    before = snapshot(scratch)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert message in err, err
    after = snapshot(scratch)
    assert {k: after[k] for k in before} == before
    assert (scratch / "o.jsonl").stat().st_size > 0


def test_a_marked_directory_is_replaced_and_an_empty_one_used(scratch, capsys):
    needs("pyarrow")  # a directory OUTPUT is a saved dataset
    assert main(M + ["d.json", "out", "--epochs", "1", "-q"]) == 0
    assert (scratch / "out" / MARKER).is_file()
    assert main(M + ["d.json", "out", "--epochs", "2", "-q"]) == 0  # its own: replaced
    (scratch / "empty").mkdir()
    assert main(M + ["d.json", "empty", "--epochs", "1", "-q"]) == 0
    assert (scratch / "empty" / "state.json").is_file()


def test_guard_api_for_new_commands(scratch):
    """What a new command does: name its inputs and outputs; the lock lasts the block."""
    with guard({"INPUT": "d.json"}, [Output("new.json", "--new"), Output("dir", "--dir", "dir")]):
        assert lock_path_for("new.json").is_file()
        with (
            pytest.raises(PathError, match="another mosaic-it run"),
            guard({}, [Output("new.json", "--new")]),
        ):
            pass
    assert not lock_path_for("new.json").exists()
    assert (scratch / "dir" / MARKER).is_file()
    with (
        pytest.raises(PathError, match="same file as INPUT"),
        guard({"INPUT": "d.json"}, [Output("./d.json")]),
    ):
        pass


def test_a_stale_lock_of_a_dead_process_does_not_block(scratch, capsys):
    lock = lock_path_for("o.jsonl")
    lock.write_text("999999\n")  # a pid that is not running, and no lock held on the file
    assert main(M + ["d.json", "o.jsonl", "--epochs", "1", "-q"]) == 0
    assert not lock.exists()


# --------------------------------------------------------------------------- permissions


def test_outputs_get_the_umask_mode_and_a_replaced_file_keeps_its_mode(scratch):
    old = os.umask(0o022)
    try:
        assert main(M + ["d.json", "o.jsonl", "--epochs", "1", "-q", "--stats", "s.json"]) == 0
        assert stat.S_IMODE((scratch / "o.jsonl").stat().st_mode) == 0o644
        assert stat.S_IMODE((scratch / "s.json").stat().st_mode) == 0o644
        os.chmod(scratch / "o.jsonl", 0o600)
        assert main(M + ["d.json", "o.jsonl", "--epochs", "2", "-q"]) == 0
        assert stat.S_IMODE((scratch / "o.jsonl").stat().st_mode) == 0o600
        os.umask(0o077)
        assert main(M + ["d.json", "p.json", "--epochs", "1", "-q"]) == 0
        assert stat.S_IMODE((scratch / "p.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- full disk, read-only


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN)")


@pytest.fixture
def small_disk(scratch):
    where = scratch / "disk"
    _mount_tmpfs(where, "size=256k")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_disk_full_keeps_the_earlier_output_and_says_what_to_do(scratch, small_disk, capsys):
    big = [dict(r, output=r["output"] * 20) for r in RECORDS * 3]
    (scratch / "big.json").write_text(json.dumps(big), encoding="utf-8")
    earlier = small_disk / "o.jsonl"
    earlier.write_text('{"earlier": "output"}\n', encoding="utf-8")
    before = snapshot(scratch)
    assert (
        main(
            M
            + ["big.json", str(earlier), "--epochs", "3", "--workers", "1", "--max-tokens", "8192"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "--resume" in err, err
    assert "Traceback" not in err
    after = snapshot(scratch)
    assert {k: after[k] for k in before} == before  # the earlier output, intact


def test_read_only_file_system(scratch, capsys):
    where = scratch / "ro"
    _mount_tmpfs(where, "ro,size=64k")
    try:
        assert main(M + ["d.json", str(where / "o.jsonl")]) == 2
        err = capsys.readouterr().err
        assert "read-only file system" in err and "Traceback" not in err, err
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no EACCES to see")
def test_no_permission(scratch, capsys):
    (scratch / "locked").mkdir()
    os.chmod(scratch / "locked", 0o555)
    assert main(M + ["d.json", "locked/o.jsonl"]) == 2
    assert "permission denied" in capsys.readouterr().err


# --------------------------------------------------------------------------- real processes


def _sigint_as_from_a_shell() -> None:
    """In a child before exec: SIGINT unblocked and default, as a terminal gives it. A child
    inherits the test process's mask and ignored signals, which a library used by an earlier
    test (a process pool, a resource tracker) can leave changed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path, session: bool = False, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mosaic_it.cli.main", *args],
        cwd=cwd,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,
        preexec_fn=_sigint_as_from_a_shell,
    )


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _bigger_input(root: Path) -> Path:
    records = [dict(r, instruction=f"{r['instruction']} ({i})") for i in range(60) for r in RECORDS]
    path = root / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_two_runs_on_one_output(scratch):
    """One wins, the other exits 2 naming it; the output is exactly a solo run's."""
    _bigger_input(scratch)
    args = ["mosaic", "big.jsonl", "o.jsonl", "--epochs", "12", "--workers", "1", "-q"]
    first = _start(args, scratch)
    _wait_for(
        lambda: lock_path_for(scratch / "o.jsonl").exists() or first.poll() is not None,
        "the first run to take its lock",
    )
    second = _start(args, scratch)
    err2 = second.communicate(timeout=300)[1]
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert second.returncode == 2, err2
    assert f"another mosaic-it run (pid {first.pid}) is writing it" in err2
    solo = _start([*args[:2], "solo.jsonl", *args[3:]], scratch)
    solo.communicate(timeout=300)
    assert (scratch / "o.jsonl").read_bytes() == (scratch / "solo.jsonl").read_bytes()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_end_when_the_parent_is_killed(scratch):
    _bigger_input(scratch)
    run = _start(
        [
            "mosaic",
            "big.jsonl",
            "o.jsonl",
            "--epochs",
            "40",
            "--workers",
            "2",
            "--force-workers",
            "-q",
        ],
        scratch,
    )
    _wait_for(lambda: len(_children(run.pid)) >= 2 or run.poll() is not None, "the workers")
    workers = _children(run.pid)
    assert run.poll() is None, "the run ended before its workers could be seen"
    run.send_signal(signal.SIGKILL)
    run.wait()
    _wait_for(lambda: not any(_alive(w) for w in workers), "the workers to end", timeout=30)


def test_ctrl_c_names_resume_and_the_parts_kept(scratch):
    _bigger_input(scratch)
    args = ["mosaic", "big.jsonl", "o.jsonl", "--epochs", "40", "--workers", "2", "--force-workers"]
    run = _start(args, scratch, session=True)
    parts = scratch / ".o.jsonl.mosaic-parts"
    _wait_for(
        lambda: (parts / "epoch-00000.jsonl").exists() or run.poll() is not None, "a finished epoch"
    )
    os.killpg(run.pid, signal.SIGINT)  # as Ctrl-C does: to the run and its workers
    err = run.communicate(timeout=120)[1]
    assert run.returncode == 130, err
    assert "--resume" in err and str(parts.name) in err, err
    assert not (scratch / "o.jsonl").exists()
    resumed = _start([*args, "--resume"], scratch)
    err = resumed.communicate(timeout=300)[1]
    assert resumed.returncode == 0, err
    assert "--resume: reused epoch(s) 0" in err
    solo = _start(["mosaic", "big.jsonl", "solo.jsonl", *args[3:], "-q"], scratch)
    solo.communicate(timeout=300)
    assert (scratch / "o.jsonl").read_bytes() == (scratch / "solo.jsonl").read_bytes()


def test_offline_hub_name_fails_fast_in_one_line(scratch):
    needs("datasets")  # without it, a hub name is refused earlier, naming the extra
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port
    for args in (
        ["mosaic", "someone/dataset", "o.jsonl"],
        ["mosaic", "d.json", "o.jsonl", "--tokenizer", "someone/tokenizer"],
    ):
        run = _start(args, scratch, HF_ENDPOINT=closed, HF_HUB_OFFLINE="0")
        err = run.communicate(timeout=60)[1]
        assert run.returncode == 2
        assert err.count("\n") == 1 and "cannot be reached" in err, err


# --------------------------------------------------------------------------- resume fingerprints


def test_resume_fingerprint_follows_content_not_names(scratch):
    from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
    from mosaic_it.executors.epochs import fingerprint
    from mosaic_it.method.rulepack import default_rules_path

    pack = json.loads(default_rules_path().read_text(encoding="utf-8"))
    (scratch / "rules.json").write_text(json.dumps(pack), encoding="utf-8")
    os.link(scratch / "d.json", scratch / "same.json")

    def fp(source: str) -> str:
        return fingerprint(Mosaicker(MosaicConfig(rules="rules.json")), source, {})

    first = fp("d.json")
    assert fp("same.json") == first  # the same content by another path
    pack["format"]["generic_phrasings"][0] = "Answer each of these, in order."
    (scratch / "rules.json").write_text(json.dumps(pack), encoding="utf-8")
    assert fp("d.json") != first  # the pack's content changed, not its name
    (scratch / "other.json").write_text(json.dumps(RECORDS[::-1]), encoding="utf-8")
    assert fp("other.json") != fp("d.json")


def test_resume_fingerprint_follows_the_tokenizer_file(scratch):
    from importlib import resources

    from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker
    from mosaic_it.executors.epochs import fingerprint

    bundled = resources.files("mosaic_it").joinpath("data/tokenizer/tokenizer.json")
    text = bundled.read_text(encoding="utf-8")
    (scratch / "tok.json").write_text(text, encoding="utf-8")

    def fp() -> str:
        config = MosaicConfig(tokenizer="tok.json", template="chatml")
        return fingerprint(Mosaicker(config), "d.json", {})

    first = fp()
    assert fp() == first
    edited = json.loads(text)
    edited["model"]["vocab"]["▁mosaic"] = len(edited["model"]["vocab"])
    (scratch / "tok.json").write_text(json.dumps(edited), encoding="utf-8")
    assert fp() != first  # another vocabulary under the same name


def test_resume_discards_parts_of_another_run(scratch, capsys):
    parts = scratch / ".o.jsonl.mosaic-parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"fingerprint": "other", "epochs": 2}))
    (parts / "epoch-00000.jsonl").write_text('{"stale": true}\n')
    assert main(M + ["d.json", "o.jsonl", "--epochs", "2", "--resume"]) == 0
    assert "were made from another input" in capsys.readouterr().err
    assert main(M + ["d.json", "solo.jsonl", "--epochs", "2", "-q"]) == 0
    assert (scratch / "o.jsonl").read_bytes() == (scratch / "solo.jsonl").read_bytes()


def test_content_digest_samples_huge_files(tmp_path, monkeypatch):
    from mosaic_it.io import fingerprint

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(1 << 16) * 8)
    monkeypatch.setattr(fingerprint, "FULL_HASH_LIMIT", 1 << 10)
    monkeypatch.setattr(fingerprint, "BLOCK", 1 << 8)
    sampled = content_digest(path)
    assert sampled.startswith("sampled:") and content_digest(path) == sampled
    with open(path, "r+b") as f:
        f.write(b"changed!")  # the first block is always sampled
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    assert content_digest(path) != sampled


def test_train_resume_compares_the_data_content(scratch):
    needs("transformers")
    from mosaic_it.apps.training.config import CONFIG_FILE, TrainConfig
    from mosaic_it.apps.training.resume import check_resume_config

    os.link(scratch / "d.json", scratch / "same.json")
    (scratch / "other.json").write_text(json.dumps(RECORDS[:5]), encoding="utf-8")
    run = scratch / "run"
    run.mkdir()
    config = TrainConfig(data="d.json", output_dir=str(run), model="builtin:tiny-llama")
    (run / CONFIG_FILE).write_text(
        json.dumps({"config": config.to_dict(), "data_content": content_digest("d.json")})
    )
    check_resume_config(
        TrainConfig(data="same.json", output_dir=str(run), model="builtin:tiny-llama")
    )
    with pytest.raises(ValueError, match="not the data the run"):
        check_resume_config(
            TrainConfig(data="other.json", output_dir=str(run), model="builtin:tiny-llama")
        )


def test_eval_resume_refuses_answers_of_another_run(scratch):
    from mosaic_it.apps.evaluate import check_responses_run, responses_run_path

    _eval_set(scratch)
    run = {
        "model": "a",
        "eval_set": content_digest("e.jsonl"),
        "prompt_format": "vicuna",
        "generation": {"max_new_tokens": 8},
    }
    responses = scratch / "r.jsonl"
    with pytest.raises(ValueError, match="no readable r.jsonl.run.json"):
        check_responses_run(responses, run, resume=True)
    responses_run_path(responses).write_text(json.dumps(run))
    check_responses_run(responses, run, resume=True)
    with pytest.raises(ValueError, match="model: 'a' then, 'b' now"):
        check_responses_run(responses, {**run, "model": "b"}, resume=True)


def test_tied_weights_warning_is_not_an_alarm():
    import logging

    from mosaic_it.apps.training.callbacks import TiedWeightsNote

    def shown(text: str) -> bool:
        return TiedWeightsNote().filter(logging.LogRecord("t", 30, "", 0, text, None, None))

    assert not shown("There were missing keys in the checkpoint model loaded: ['lm_head.weight'].")
    assert shown("There were missing keys in the checkpoint model loaded: ['model.norm.weight'].")
    assert shown("something else")


def test_cost_advises_only_flags_it_takes():
    import re

    from mosaic_it.apps import cost_timing as cost  # where cost gives its advice

    flags = {s for a in build()[1]["cost"][1].actions for s in a.option_strings}
    text = Path(cost.__file__).read_text(encoding="utf-8")
    advised = set(re.findall(r"(?:pass|lower|add|use) (--[a-z][a-z-]+)", text))
    assert advised and advised <= flags, advised - flags


def test_ctrl_c_during_train_names_the_checkpoints_kept(scratch, capsys):
    """A real SIGINT to this process while the tiny model trains (a thread sends it once the
    first checkpoint is saved); the run stops with 130 and names what it kept."""
    needs("trl")
    import threading

    running = threading.Event()
    running.set()

    def interrupt() -> None:
        # once the first checkpoint is saved, Ctrl-C; again every 5 s while the run goes on (a
        # signal that lands inside a library's own handler can be absorbed there, and a user
        # presses again), so a loaded machine cannot leave the suite training for 200 epochs
        end = time.monotonic() + 300
        while running.is_set() and time.monotonic() < end:
            if any((scratch / "run").glob("checkpoint-*")):
                time.sleep(0.3)
                while running.is_set() and time.monotonic() < end:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                return
            time.sleep(0.05)

    # this process receives the SIGINT: make it deliverable as a terminal's would be, whatever
    # an earlier test's libraries left in this thread's mask or handler (restored after)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    try:
        status = main(
            [
                "train",
                "d.json",
                "--model",
                "builtin:tiny-llama",
                "--output-dir",
                "run",
                "--save-steps",
                "1",
                "--epochs",
                "200",
                "--batch-size",
                "2",
                "--micro-batch-size",
                "2",
                "--max-length",
                "64",
            ]
        )
    finally:
        running.clear()
        watcher.join()
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    err = capsys.readouterr().err
    assert status == 130, err
    assert "interrupted (SIGINT); checkpoints kept in run: checkpoint-" in err
    assert "continue with --resume" in err
