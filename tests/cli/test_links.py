"""Files this tool names itself (locks, parts, markers, temporaries) are never written
through a planted link, FIFO, directory or foreign file, and every message names its path.

Each case plants the thing with the real system call (symlink, mkfifo, mkdir, link), runs the
real command line, and checks the exit status, the one-line message and that every byte of
every file that was there is unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mosaic_it.cli.main import main
from mosaic_it.io.nofollow import (
    NotAFile,
    append_text,
    create_new,
    open_regular,
    remove_stale_temporaries,
    write_new_text,
)
from mosaic_it.io.outputs import lock_path_for
from tests.cli.test_safety import scratch, snapshot  # noqa: F401  (scratch: a fixture)

RUN = ["mosaic", "d.json", "o.jsonl", "--epochs", "1", "-q"]


def _links(root: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in root.iterdir() if p.is_symlink()}


def _refused(root: Path, capsys, argv: list[str], *parts: str) -> str:
    before, links = snapshot(root), _links(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "?:" not in err and "Traceback" not in err
    for part in parts:
        assert part in err, err
    assert snapshot(root) == before  # every file byte-identical, nothing new
    assert _links(root) == links  # the planted links are still there, unchanged
    return err


# --------------------------------------------------------------------------- the lock file

LOCK = ".o.jsonl.mosaic-lock"


@pytest.mark.parametrize(
    ("case", "plant", "what"),
    [
        ("link-to-input", lambda r: os.symlink("d.json", r / LOCK), "a symbolic link to d.json"),
        (
            "link-to-foreign-file",
            lambda r: os.symlink("notes.txt", r / LOCK),
            "a symbolic link to notes.txt",
        ),
        (
            "dangling-link",
            lambda r: os.symlink("nowhere.txt", r / LOCK),
            "a dangling symbolic link to nowhere.txt",
        ),
        ("fifo", lambda r: os.mkfifo(r / LOCK), "a FIFO (named pipe)"),
        ("directory", lambda r: (r / LOCK).mkdir(), "a directory"),
        (
            "hard-link-to-input",
            lambda r: os.link(r / "d.json", r / LOCK),
            "a file with 2 hard links",
        ),
        (
            "foreign-file",
            lambda r: (r / LOCK).write_text("my notes\n", encoding="utf-8"),
            "a file holding b'my notes\\n'",
        ),
    ],
)
def test_lock_path_that_is_not_our_lock_is_refused(scratch, capsys, case, plant, what):  # noqa: F811
    plant(scratch)
    _refused(scratch, capsys, RUN, f"its lock file {LOCK} is {what}", "not a lock this tool wrote")
    assert not (scratch / "o.jsonl").exists()
    assert not (scratch / "nowhere.txt").exists()  # the dangling link's target was not made


def test_lock_left_by_a_killed_run_is_reused_and_removed(scratch):  # noqa: F811
    lock = lock_path_for(scratch / "o.jsonl")
    lock.write_text("999999\n", encoding="utf-8")  # a dead run's pid
    assert main(RUN) == 0
    assert not lock.exists() and (scratch / "o.jsonl").exists()


# --------------------------------------------------------------------------- other paths


def test_parts_directory_that_is_a_link_is_refused(scratch, capsys):  # noqa: F811
    (scratch / "elsewhere").mkdir()
    (scratch / "elsewhere" / "keep.txt").write_text("mine\n", encoding="utf-8")
    os.symlink("elsewhere", scratch / ".o.jsonl.mosaic-parts")
    for argv in (RUN, [*RUN, "--resume"]):
        _refused(
            scratch,
            capsys,
            argv,
            ".o.jsonl.mosaic-parts: is a symbolic link to elsewhere",
            "never written through",
        )
    assert os.listdir(scratch / "elsewhere") == ["keep.txt"]


def test_marker_that_is_a_link_is_refused(scratch, capsys):  # noqa: F811
    (scratch / "ds").mkdir()
    os.symlink("../notes.txt", scratch / "ds" / ".mosaic-it")
    before = (scratch / "notes.txt").read_bytes()
    assert main(["mosaic", "d.json", "ds", "--epochs", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "ds/.mosaic-it" in err and "symbolic link" in err and err.count("\n") == 1, err
    assert (scratch / "notes.txt").read_bytes() == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_device_output_says_what_it_is(scratch, capsys):  # noqa: F811
    for output in ("/dev/full", "/dev/null"):
        assert main(["mosaic", "d.json", output, "-q"]) == 2
        err = capsys.readouterr().err
        assert f"OUTPUT {output}: is a character device" in err, err
        assert "give a directory path" not in err


def test_fifo_output_says_what_it_is(scratch, capsys):  # noqa: F811
    os.mkfifo(scratch / "pipe")
    _refused(scratch, capsys, ["mosaic", "d.json", "pipe", "-q"], "pipe: is a FIFO (named pipe)")


# --------------------------------------------------------------------------- stale temporaries


def test_a_run_removes_its_own_stale_temporaries_only(scratch):  # noqa: F811
    ours = scratch / ".o.jsonl.k3j_x9aa.partial"  # what a killed run leaves (atomic.py's names)
    ours.write_bytes(b"x" * 1000)
    old_dir = scratch / ".o.jsonl.abcdefgh.old"
    (old_dir / "d").mkdir(parents=True)
    foreign = {
        ".o.jsonl.notmine.partial": b"a longer middle part: not our name",
        ".o.jsonl.abcdefgh.partial.txt": b"another suffix",
        ".other.jsonl.abcdefgh.partial": b"another output's",
    }
    for name, data in foreign.items():
        (scratch / name).write_bytes(data)
    os.symlink("notes.txt", scratch / ".o.jsonl.zzzzzzzz.partial")  # a link by our name
    (scratch / ".o.jsonl.yyyyyyyy.old").mkdir()
    (scratch / ".o.jsonl.yyyyyyyy.old" / "keep.txt").write_text("x", encoding="utf-8")
    assert main(RUN) == 0
    assert not ours.exists() and not old_dir.exists()
    for name, data in foreign.items():
        assert (scratch / name).read_bytes() == data
    assert os.readlink(scratch / ".o.jsonl.zzzzzzzz.partial") == "notes.txt"
    assert (scratch / ".o.jsonl.yyyyyyyy.old" / "keep.txt").exists()  # holds what is not ours


# --------------------------------------------------------------------------- the primitives


def test_primitives_never_follow_a_link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep\n", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        create_new(link)
    for call in (
        lambda: open_regular(link, os.O_RDWR),
        lambda: append_text(link),
        lambda: write_new_text(link, "x"),
    ):
        with pytest.raises(NotAFile, match="is a symbolic link to"):
            call()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(NotAFile, match="dangling symbolic link"):
        append_text(dangling)
    assert target.read_text(encoding="utf-8") == "keep\n"
    assert not (tmp_path / "missing").exists()
    assert remove_stale_temporaries(tmp_path / "o.jsonl") == []


# --------------------------------------------------------------------------- config file names


@pytest.mark.parametrize(
    "name",
    [
        "two\nlines.jsonl",
        'it\'s "quoted".jsonl',
        "hash #1 # not a comment.jsonl",
        "données ünïcödé 数据.jsonl",
        "tab\tand\u2028separator.jsonl",
    ],
)
def test_config_file_reads_back_for_any_output_name(scratch, name):  # noqa: F811
    assert main(["mosaic", "d.json", name, "--epochs", "1", "--seed", "3", "-q"]) == 0
    first = (scratch / name).read_bytes()
    config = scratch / f"{name}.config.yaml"
    header = config.read_text(encoding="utf-8").split("\n")[:2]
    assert header[1].startswith("# Run it again with: mosaic-it mosaic --config ")
    (scratch / name).unlink()
    assert main(["mosaic", "--config", str(config), "-q"]) == 0
    assert (scratch / name).read_bytes() == first


def test_plot_at_a_link_replaces_the_link_not_its_target(tmp_path):
    """``score --plot`` wrote through a link with matplotlib's own open(); now the picture
    replaces the link and the file it pointed at keeps its bytes."""
    pytest.importorskip("matplotlib")
    data = Path(__file__).resolve().parents[1] / "data" / "agreement"
    items = [line for line in (data / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
    responses = tmp_path / "r.jsonl"
    responses.write_text(
        '{"id": "eval-0", "response": "x"}\n', encoding="utf-8"
    )  # one answer is enough to plot
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n", encoding="utf-8")
    (tmp_path / "acc.png").symlink_to(target)
    assert items
    args = ["score", str(data / "eval.jsonl"), str(responses), "--plot", str(tmp_path / "acc.png")]
    assert main(args) == 0
    assert target.read_text(encoding="utf-8") == "my notes\n"
    png = tmp_path / "acc.png"
    assert not png.is_symlink() and png.read_bytes().startswith(b"\x89PNG")
