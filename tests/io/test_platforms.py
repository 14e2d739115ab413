"""What a platform without fcntl (Windows) or fdatasync (macOS) gets: the package and the
rewards import; a command that writes says in one line that outputs cannot be locked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_FCNTL = "import sys; sys.modules['fcntl'] = None\n"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_package_imports_without_fcntl():
    done = _python(
        NO_FCNTL + "import mosaic_it, mosaic_it.rewards\n"
        "import mosaic_it.cli.main, mosaic_it.io.outputs, mosaic_it.executors.local\n"
        "from mosaic_it import Mosaicker, verify\nprint('ok')"
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_without_fcntl_a_command_that_writes_says_outputs_cannot_be_locked(tmp_path):
    out = tmp_path / "o.jsonl"
    done = _python(
        NO_FCNTL + "from mosaic_it.cli.main import main\nsys.exit(main(sys.argv[1:]))",
        "mosaic",
        "builtin:example",
        str(out),
        "-q",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"mosaic-it: error: OUTPUT {out}: outputs are locked with flock, which this platform "
        "lacks; mosaic-it writes outputs on Linux and other POSIX systems\n"
    )
    assert os.listdir(tmp_path) == []  # the lock file it could not lock is not left


def test_without_fdatasync_the_data_is_synced_with_fsync(tmp_path, monkeypatch):
    from mosaic_it.io import atomic

    synced = []
    monkeypatch.delattr(os, "fdatasync", raising=False)
    monkeypatch.setattr(os, "fsync", synced.append)
    atomic.sync_data(7)
    assert synced == [7]
