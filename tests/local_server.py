"""A model served on 127.0.0.1 by ``transformers serve`` for as long as a ``with`` block lasts:
what the served backend of ``mosaic-it eval`` is tested and measured against. A helper of the
tests and the benchmarks (``from tests.local_server import LocalServer``), not of the package:
it needs the ``serve`` dependency group."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from typing import Any

from mosaic_it.apps.model_source import ModelError

CB_BLOCK_SIZE, CB_BLOCKS = 32, 256  # continuous batching: 8,192 tokens of KV cache


class LocalServer:
    """``transformers serve`` serving a model directory on 127.0.0.1, for as long as the
    ``with`` block lasts (needs the serve dependency group); ``base_url`` is its API root."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        log: str | os.PathLike[str],
        start_timeout: float = 300.0,
        threads: int = 0,
        continuous_batching: bool = False,
    ) -> None:
        self.threads = threads  # torch threads of the server (0: torch's default)
        # batch the requests in flight together (without it, one request at a time)
        self.continuous_batching = continuous_batching
        self.model_dir = str(model_dir)
        self.log = log
        self.start_timeout = start_timeout
        self.proc: Any = None
        self.base_url = ""

    def __enter__(self) -> LocalServer:
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable,
            "-c",
            (
                "import sys; from transformers.cli.transformers import "
                "main; sys.argv[0] = 'transformers'; sys.exit(main())"
            ),
            "serve",
            self.model_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ]
        if self.continuous_batching:
            # a bounded KV cache (CB_BLOCKS x CB_BLOCK_SIZE tokens): left to size itself, the
            # engine took 13.7 GB on a shared 23 GB CPU machine and was killed for memory
            cmd += ["--continuous-batching", "--cb-block-size", str(CB_BLOCK_SIZE)]
            cmd += ["--cb-num-blocks", str(CB_BLOCKS)]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self._env())
        self.base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise ModelError(f"transformers serve exited: {self._tail()}")
            try:
                urllib.request.urlopen(self.base_url + "/models", timeout=2).read()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise ModelError(f"transformers serve did not start: {self._tail()}") from None
                time.sleep(0.5)

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def _tail(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()[-2000:]

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
