"""The one temporary-then-rename writer: an output appears whole, or the earlier one stays."""

from __future__ import annotations

import errno
import os

import pytest

from mosaic_it.io.atomic import atomic_dir, atomic_path, atomic_writer
from mosaic_it.io.outputs import MARKER, PathError
from mosaic_it.io.writers import write_rows

from ..conftest import needs


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".partial" in p.name or ".old" in p.name)


def test_a_file_appears_only_when_the_block_finishes(tmp_path):
    target = tmp_path / "deep" / "out.jsonl"
    with atomic_writer(target) as out:
        out.write("one\n")
        assert not target.exists()  # the text goes to a temporary file beside it
        assert leftovers(target.parent)
    assert target.read_text(encoding="utf-8") == "one\n"
    assert leftovers(target.parent) == []


def test_a_failing_write_keeps_the_existing_file_intact(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("earlier\n", encoding="utf-8")
    os.chmod(target, 0o600)
    with pytest.raises(RuntimeError, match="stopped"), atomic_writer(target) as out:
        out.write("half of a new fi")
        raise RuntimeError("stopped")
    assert target.read_text(encoding="utf-8") == "earlier\n"
    assert leftovers(tmp_path) == []
    with atomic_writer(target) as out:
        out.write("new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o600)  # the replaced file's mode


def test_a_disk_error_names_the_file_and_says_what_was_kept(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"earlier")
    with pytest.raises(PathError) as err, atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert str(err.value) == (
        f"{target}: cannot write: no space left on the device; the earlier file is unchanged"
    )
    assert target.read_bytes() == b"earlier"
    assert leftovers(tmp_path) == []
    fresh = tmp_path / "new.jsonl"
    with pytest.raises(PathError, match="nothing was written"), atomic_path(fresh) as tmp:
        raise OSError(errno.EROFS, "Read-only file system", tmp)
    assert not fresh.exists()


def test_a_path_through_a_file_is_a_path_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with (
        pytest.raises(PathError, match="cannot write"),
        atomic_writer(tmp_path / "notes.txt" / "out.jsonl") as out,
    ):
        out.write("never")


def test_a_directory_is_swapped_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "data"
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "a.arrow").write_text("first", encoding="utf-8")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "a.arrow"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "b.arrow").write_text("second", encoding="utf-8")
        raise RuntimeError("stopped")
    assert (target / "a.arrow").read_text(encoding="utf-8") == "first"
    assert not (target / "b.arrow").exists()
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "b.arrow").write_text("second", encoding="utf-8")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "b.arrow"]
    assert leftovers(tmp_path) == []


def test_a_file_where_a_directory_goes_is_refused(tmp_path):
    (tmp_path / "data").write_text("mine", encoding="utf-8")
    with pytest.raises(ValueError, match="not a directory"), atomic_dir(tmp_path / "data"):
        pass
    assert (tmp_path / "data").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.parquet", "out"])
def test_every_row_writer_keeps_the_earlier_output_when_its_rows_fail(tmp_path, name):
    needs("datasets")
    target = tmp_path / name
    rows = [{"instruction": "Say hi.", "input": "", "output": "Hi.", "mosaic": None}]
    assert write_rows(target, rows, "alpaca") == 1
    before = _snapshot(target)

    def failing():
        yield from rows * 3
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_rows(target, failing(), "alpaca")
    assert _snapshot(target) == before
    assert leftovers(tmp_path) == []


def _snapshot(path):
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return path.read_bytes()
