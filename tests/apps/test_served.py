"""mosaic-it eval --backend openai against real servers on 127.0.0.1: ``transformers serve``
serving a saved tiny Llama, and small http.server servers that fail, stall, refuse or answer
with something that is not a chat completion."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mosaic_it.apps.backends import ServedOptions, ServerError
from mosaic_it.apps.evaluate import evaluate
from mosaic_it.cli.main import main

from ..conftest import needs
from ..local_server import LocalServer

SECRET = "sk-test-0123456789abcdef"
# Vicuna v1.1 as a chat template, so that the served model is prompted as mosaic-it prompts it
VICUNA_CHAT = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }} "
    "{% elif m['role'] == 'user' %}USER: {{ m['content'] }} {% else %}ASSISTANT: "
    "{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


# ------------------------------------------------------------------------ transformers serve


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    needs("torch")
    from mosaic_it.apps.model_source import TINY_LLAMA, resolve_model
    from mosaic_it.apps.models import bundled_hf_tokenizer, load_model

    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    model = load_model(resolve_model(TINY_LLAMA), seed=0)
    tokenizer = bundled_hf_tokenizer()
    tokenizer.chat_template = VICUNA_CHAT
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def transformers_server(tiny_dir):
    for module in ("fastapi", "uvicorn", "openai"):
        needs(module)  # transformers serve: the serve group
    with LocalServer(tiny_dir, tiny_dir.parent / "serve.log", start_timeout=180) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "eval.jsonl"
    assert (
        main(
            [
                "make-eval",
                "builtin:example",
                str(path),
                "--n",
                "6",
                "--max-instructions",
                "3",
                "--seed",
                "7",
                "-q",
            ]
        )
        == 0
    )
    return path


def _answers(path: Path) -> dict[str, str]:
    return {d["id"]: d["response"] for d in map(json.loads, path.read_text().splitlines())}


def test_served_model_answers_like_the_same_model_here(
    transformers_server, tiny_dir, eval_set, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MOSAIC_TEST_KEY", SECRET)
    table, served = tmp_path / "table.json", tmp_path / "served.jsonl"
    args = [
        "eval",
        "--backend",
        "openai",
        "--base-url",
        transformers_server,
        "--model",
        str(tiny_dir),
        "--api-key-env",
        "MOSAIC_TEST_KEY",
        "--eval-set",
        str(eval_set),
        "--max-new-tokens",
        "12",
        "--concurrency",
        "3",
        "--responses",
        str(served),
        "--out",
        str(table),
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "6 of 6 evaluation items scored" in printed.out
    run = json.loads(table.read_text())["run"]
    assert run["backend"] == "openai" and run["api_key"] == "from $MOSAIC_TEST_KEY"
    assert run["generation"]["tokens_generated"] > 0
    assert SECRET not in printed.out + printed.err + table.read_text() + served.read_text()
    # greedy answers of the served model are those of the same model loaded here
    here = tmp_path / "here.jsonl"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_dir),
                "--prompt-format",
                "chat",
                "--eval-set",
                str(eval_set),
                "--max-new-tokens",
                "12",
                "--responses",
                str(here),
                "-q",
            ]
        )
        == 0
    )
    assert _answers(served) == _answers(here)
    # --resume keeps the answers there and asks only for the missing ones
    kept = served.read_text().splitlines()[:4]
    served.write_text("\n".join(kept) + "\n")
    assert main(args + ["--resume", "-q"]) == 0
    run = json.loads(table.read_text())["run"]
    assert run["generation"]["resumed_answers"] == 4 and run["generation"]["answers"] == 2
    assert _answers(served) == _answers(here)


# ------------------------------------------------------------------------ faulty servers


class FakeServer:
    """A real HTTP server in a thread; ``behave(n, body, headers)`` returns (status, payload,
    extra headers) for the n-th request (0-based)."""

    def __init__(self, behave):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                status, payload, headers = behave(n, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(body) -> dict:
    text = body["messages"][-1]["content"][:20]
    return {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f" echo {text} "},
                "finish_reason": "stop",
            }
        ],
        "usage": {"completion_tokens": 3},
    }


@pytest.fixture
def fake():
    servers = []

    def start(behave):
        server = FakeServer(behave)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def _served(url, **kw):
    base = {
        "base_url": url,
        "model": "m",
        "api_key_env": "MOSAIC_TEST_KEY",
        "concurrency": 2,
        "timeout": 5.0,
        "retries": 3,
        "backoff": 0.01,
    }
    base.update(kw)
    return ServedOptions(**base)


def test_retries_429_and_5xx_then_answers(fake, eval_set, tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_TEST_KEY", SECRET)

    tries: dict[str, int] = {}

    def behave(n, body):  # per item: 429, then 503, then an answer
        key = body["messages"][-1]["content"]
        tries[key] = tries.get(key, 0) + 1
        if tries[key] == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if tries[key] == 2:
            return 503, b"<html>overloaded</html>", {}
        return 200, completion(body), {}

    server = fake(behave)
    responses = tmp_path / "r.jsonl"
    report, meta = evaluate(
        "m",
        str(eval_set),
        backend="openai",
        served=_served(server.url),
        responses_path=str(responses),
    )
    assert report.scored == 6 and meta["generation"]["answers"] == 6
    assert len(server.requests) == 18  # every item asked three times
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert all(
        r["body"]["temperature"] == 0.0 and r["body"]["max_tokens"] == 512 for r in server.requests
    )
    assert all(a.startswith("echo ") for a in _answers(responses).values())  # stripped
    assert meta["generation"]["tokens_generated"] == 18


def test_failing_server_stops_keeping_the_answers_that_came(fake, eval_set, tmp_path, capsys):
    server = fake(
        lambda n, body: (200, completion(body), {}) if n < 3 else (500, {"error": "boom"}, {})
    )
    responses = tmp_path / "r.jsonl"
    args = [
        "eval",
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        "m",
        "--eval-set",
        str(eval_set),
        "--concurrency",
        "1",
        "--retries",
        "0",
        "--responses",
        str(responses),
        "-q",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "HTTP 500" in err and "boom" in err and "after 1 tries" in err and "Traceback" not in err
    assert len(_answers(responses)) == 3
    assert "the 3 answers so far are kept in" in err and "--resume to continue" in err
    good = fake(lambda n, body: (200, completion(body), {}))
    args[args.index(server.url)] = good.url
    assert main(args + ["--resume"]) == 0
    assert len(_answers(responses)) == 6 and len(good.requests) == 3


def test_stalling_server_times_out(fake, eval_set):
    def behave(n, body):
        time.sleep(3)
        return 200, completion(body), {}

    server = fake(behave)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"no complete reply within 0.3 s \(after 2 tries\)"):
        evaluate(
            "m", str(eval_set), backend="openai", served=_served(server.url, timeout=0.3, retries=1)
        )
    assert time.monotonic() - t0 < 3  # it did not wait for the stalled replies


@pytest.mark.parametrize(
    "payload",
    [b"not json{", {"choices": []}, {"result": "ok"}, {"choices": [{"message": {"content": 7}}]}],
)
def test_malformed_replies_are_retried_then_reported(fake, eval_set, payload):
    server = fake(lambda n, body: (200, payload, {}))
    with pytest.raises(ServerError, match="not a chat completion"):
        evaluate(
            "m",
            str(eval_set),
            backend="openai",
            served=_served(server.url, retries=2, concurrency=1),
        )
    assert len(server.requests) == 3


def test_refused_key_stops_at_once_without_showing_it(fake, eval_set, capsys, monkeypatch):
    monkeypatch.setenv("MOSAIC_TEST_KEY", SECRET)
    server = fake(lambda n, body: (401, {"error": "invalid key"}, {}))
    assert (
        main(
            [
                "eval",
                "--backend",
                "openai",
                "--base-url",
                server.url,
                "--model",
                "m",
                "--api-key-env",
                "MOSAIC_TEST_KEY",
                "--eval-set",
                str(eval_set),
                "--concurrency",
                "1",
            ]
        )
        == 2
    )
    printed = capsys.readouterr()
    assert "HTTP 401 (check the key in $MOSAIC_TEST_KEY)" in printed.err
    assert SECRET not in printed.out + printed.err
    assert len(server.requests) == 1


def test_openai_backend_needs_a_base_url(eval_set, capsys):
    assert main(["eval", "--backend", "openai", "--model", "m", "--eval-set", str(eval_set)]) == 2
    assert "needs --base-url" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--backend",
                "openai",
                "--model",
                "m",
                "--base-url",
                "localhost:8000",
                "--eval-set",
                str(eval_set),
            ]
        )
        == 2
    )
    assert "expected http(s)://" in capsys.readouterr().err


class TricklingServer:
    """A real TCP server on 127.0.0.1 that answers every connection with a valid HTTP reply
    sent one byte a second (from the status line on), as a stuck proxy or server can."""

    def __init__(self, interval: float = 1.0) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.interval = interval
        self.connections = 0
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn) -> None:
        body = json.dumps(completion({"messages": [{"content": "x"}]})).encode()
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        with conn:
            conn.recv(65536)
            for i in range(len(reply)):
                if self.closed.wait(self.interval):
                    return
                try:
                    conn.sendall(reply[i : i + 1])
                except OSError:
                    return

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def test_timeout_is_a_deadline_for_the_whole_request(eval_set, tmp_path, capsys):
    """One byte a second never lets a per-read timeout expire; --timeout 3 ends the request
    after about 3 s all the same, and the message names what --resume would do."""
    server = TricklingServer()
    responses = tmp_path / "r.jsonl"
    args = ["eval", "--backend", "openai", "--base-url", server.url, "--model", "m"]
    args += ["--eval-set", str(eval_set), "--concurrency", "1", "--responses", str(responses)]
    try:
        t0 = time.monotonic()
        assert main([*args, "--timeout", "3", "--retries", "0", "-q"]) == 2
        took = time.monotonic() - t0
    finally:
        server.close()
    err = capsys.readouterr().err
    assert 2.9 < took < 6, took
    assert err.count("\n") == 1, err
    assert "no complete reply within 3 s (after 1 tries)" in err, err
    assert f"the 0 answers so far are kept in {responses}" in err and "--resume" in err, err
    assert server.connections == 1
    # then --resume asks again, of a server that answers
    good = FakeServer(lambda n, body: (200, completion(body), {}))
    try:
        args[args.index(server.url)] = good.url
        assert main([*args, "--resume", "-q"]) == 0
    finally:
        good.close()
    assert len(_answers(responses)) == 6


def test_retries_each_get_their_own_deadline(eval_set):
    server = TricklingServer(interval=0.5)
    t0 = time.monotonic()
    try:
        with pytest.raises(ServerError, match=r"no complete reply within 1 s \(after 2 tries\)"):
            evaluate(
                "m",
                str(eval_set),
                backend="openai",
                served=_served(server.url, timeout=1.0, retries=1, concurrency=1),
            )
    finally:
        server.close()
    assert 1.9 < time.monotonic() - t0 < 5
    assert server.connections == 2


@pytest.mark.parametrize("value", ["inf", "0", "-1", "nan", "-inf"])
def test_timeout_must_be_positive_and_finite(eval_set, capsys, value):
    args = ["eval", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*args, "--eval-set", str(eval_set), f"--timeout={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--timeout: the seconds a whole request may take" in err, err
    assert "Traceback" not in err


def test_a_signal_ends_a_served_eval_at_once_naming_resume(eval_set, tmp_path):
    """SIGTERM while a request trickles in: the run does not wait for it (its deadline is a
    minute away), exits 143 and says the answers so far are kept for --resume."""
    import os
    import signal
    import subprocess
    import sys

    server = TricklingServer()
    src = Path(__file__).resolve().parents[2] / "src"
    responses = tmp_path / "r.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-m", "mosaic_it.cli", "eval", "--backend", "openai"]
        + ["--base-url", server.url, "--model", "m", "--eval-set", str(eval_set)]
        + ["--timeout", "60", "--responses", str(responses), "-q"],
        env={**os.environ, "PYTHONPATH": str(src)},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while server.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        err = run.communicate(timeout=30)[1]
    finally:
        server.close()
    assert time.monotonic() - sent < 10
    assert run.returncode == 143, err
    assert err.count("\n") == 1 and f"kept in {responses}" in err and "--resume" in err, err
