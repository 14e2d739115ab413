"""The pool of workers ends without waiting on what a dead worker held: a result cut short in
the results' pipe, the lock on it (a run once hung over 7 minutes after Ctrl-C: the parent in
ProcessPoolExecutor.shutdown, a worker in SimpleQueue.put); and its own threads have ended
when the pool's error is raised (one still ending the pool as the program exited printed a
traceback about a closed file descriptor in about one run of ten with a killed worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# worker 0 takes the results' lock, writes the start of a result and dies holding both;
# worker 1 then blocks on that lock with its own result
CUT_SHORT = """
import gc, multiprocessing.queues, os, struct, sys, threading, time
from mosaic_it.engine.processes import WorkerDied, fork_pool

def job(state, i):
    if i == 0:
        q = next(o for o in gc.get_objects() if isinstance(o, multiprocessing.queues.SimpleQueue))
        q._wlock.acquire()
        os.write(q._writer.fileno(), struct.pack("!i", 1 << 20) + b"cut short")
        os._exit(9)
    time.sleep(0.5)
    return i

how = sys.argv[1]
t0 = time.monotonic()
try:
    with fork_pool(2, "testing", "test", None) as pool:
        futures = [pool.submit(job, i) for i in (0, 1)]
        if how == "interrupted":
            time.sleep(1.5)  # worker 1 is blocked on the lock by now
            raise KeyboardInterrupt
        pool.result(futures[0])
except WorkerDied as exc:
    print("WorkerDied", exc.exit_status)
except KeyboardInterrupt:
    print("interrupted")
took = time.monotonic() - t0
# the pool's own threads have ended by then (the pipe ended with the workers): one still
# closing the pool's pipes as the program exits races the exit's handlers closing them too
print(f"threads {threading.active_count()}; took {took:.1f}")
"""


@pytest.mark.parametrize("how", ["waiting", "interrupted"])
def test_a_result_cut_short_by_a_dead_worker_ends_the_pool(how):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", CUT_SHORT, how],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stdout + done.stderr
    assert lines[0] == ("WorkerDied 3" if how == "waiting" else "interrupted")
    assert lines[1].startswith("threads 1;"), lines
    assert float(lines[1].rsplit(" ", 1)[1]) < 20, lines  # at once, not a hang


def _triple(state, item):
    return state * item


def test_the_start_method_is_fork_where_there_is_one_else_spawn(monkeypatch):
    import multiprocessing

    from mosaic_it.engine import parallel, processes

    assert processes.start_method() == "fork"  # Linux
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert processes.start_method() == "spawn"
    with processes.fork_pool(2, "testing", "test", 3) as pool:  # the state is pickled
        assert list(pool.map(_triple, range(4))) == [0, 3, 6, 9]
    # the reader is a closure: read here, the same records
    invalid: list = []
    with parallel.ReadAhead(lambda inv: iter(["a", "b"]), invalid) as ahead:
        assert list(ahead) == ["a", "b"]
