"""Generation backends of ``mosaic-it eval`` that do not run the model in this process.

* :class:`OpenAIBackend`: any server with the OpenAI Chat Completions API (vLLM, SGLang,
  llama.cpp's server, TGI, ``transformers serve``). Requests run side by side up to
  ``concurrency``; each must be done within its timeout (a deadline for the whole request,
  whatever the server sends meanwhile: :mod:`.http_deadline`); a 429, a 5xx, a dropped
  connection, a timeout or a reply that is not the API's JSON is retried with exponential
  backoff (a ``Retry-After`` header is honoured); other 4xx replies stop at once. Answers
  reach ``on_answer`` as they come, so the caller writes them before the next one arrives.
  The API key is read from an environment variable and is sent only in the Authorization
  header: it is never printed or written.
* :class:`VLLMBackend`: vLLM's offline ``LLM.chat`` in this process, where vLLM is installed.

Only the standard library speaks HTTP here (``urllib``), so the served backend needs no extra.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from mosaic_it.apps.http_deadline import fetch_within
from mosaic_it.apps.models import ModelError
from mosaic_it.apps.prompt_formats import chat_messages

__all__ = [
    "GenerationBackend",
    "OpenAIBackend",
    "PromptLike",
    "ServedOptions",
    "ServerError",
    "VLLMBackend",
]

RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
MAX_BACKOFF = 30.0
EXCERPT = 200


class PromptLike(Protocol):
    id: str
    instruction: str
    system: str


class GenerationBackend(Protocol):
    """What ``mosaic-it eval`` asks of a backend: what it runs (for the record of a run), and
    answers to prompts, each handed to ``on_answer(id, text)`` as it comes."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def answer(
        self,
        prompts: Sequence[PromptLike],
        opt: Any,
        on_answer: Callable[[str, str], None],
        log: Callable[[str], None] = ...,
    ) -> dict[str, Any]: ...


class ServerError(ModelError):
    """The server failed a request for good: the message says which item and why."""


@dataclass(frozen=True)
class ServedOptions:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout: float = 120.0  # seconds for one request, all of it (a deadline)
    retries: int = 5  # further tries after the first
    backoff: float = 1.0  # seconds before the first retry; doubles each time

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"--base-url: expected http(s)://host[:port]/v1, got {self.base_url!r}"
            )
        if not self.model:
            raise ValueError("--backend openai needs --model NAME (the served model's name)")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(
                f"--timeout: the seconds a whole request may take, a positive finite number; "
                f"got {self.timeout:g}"
            )
        if self.concurrency < 1 or self.retries < 0 or self.backoff < 0:
            raise ValueError("--concurrency must be positive, --retries at least 0")

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def public_url(self) -> str:
        """The base URL without any user:password part (for messages and the results file)."""
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class _NotAsked(Exception):
    """An item not asked because another one failed for good."""


class _Retry(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


class OpenAIBackend:
    """Chat Completions over HTTP, with bounded concurrency, timeouts and retries."""

    name = "openai"

    def __init__(self, options: ServedOptions) -> None:
        self.options = options
        self._key = os.environ.get(options.api_key_env, "")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: ServerError | None = None

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {
            "backend": self.name,
            "base_url": o.public_url(),
            "served_model": o.model,
            "prompt_format": "served (the server's chat template)",
            "concurrency": o.concurrency,
            "timeout_s": o.timeout,
            "retries": o.retries,
            "api_key": f"from ${o.api_key_env}" if self._key else "none",
        }

    def body(self, prompt: PromptLike, opt: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": chat_messages(prompt.instruction, prompt.system),
            "max_tokens": opt.max_new_tokens,
            "stream": False,
        }
        if opt.sample:
            body.update(temperature=opt.temperature, top_p=opt.top_p, seed=opt.seed)
        else:
            body.update(temperature=0.0)
        return body

    def _post(self, body: dict[str, Any]) -> tuple[str, int | None]:
        """One request: (answer, completion tokens); raises _Retry or ServerError."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(
            self.options.endpoint, data=data, headers=headers, method="POST"
        )
        try:
            raw = fetch_within(request, self.options.timeout)
        except urllib.error.HTTPError as exc:
            text = _excerpt(exc.read() if exc.fp else b"")
            if exc.code in RETRY_STATUS:
                raise _Retry(f"HTTP {exc.code} {text}", _retry_after(exc.headers)) from None
            hint = ""
            if exc.code in (401, 403):
                hint = f" (check the key in ${self.options.api_key_env})"
            elif exc.code == 404:
                hint = " (check --base-url, which ends in /v1, and --model)"
            raise ServerError(f"HTTP {exc.code}{hint}: {text}") from None
        except TimeoutError:
            raise _Retry(f"no complete reply within {self.options.timeout:g} s") from None
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(f"connection failed ({reason})") from None
        try:
            reply_json = json.loads(raw)
            choice = reply_json["choices"][0]
            content = choice["message"]["content"]
            if content is None:
                content = ""
            if not isinstance(content, str):
                raise TypeError("content is not a text")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Retry(
                f"a reply that is not a chat completion ({type(exc).__name__}: {_excerpt(raw)})"
            ) from None
        usage = reply_json.get("usage") if isinstance(reply_json, dict) else None
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return content.strip(), tokens if isinstance(tokens, int) else None

    def ask(self, prompt: PromptLike, opt: Any) -> tuple[str, int | None]:
        """One answer, retried as the module says; raises ServerError naming the item (and
        then no further request starts)."""
        try:
            return self._ask(prompt, opt)
        except ServerError as exc:
            with self._lock:
                self._error = self._error or exc
            self._stop.set()
            raise

    def _ask(self, prompt: PromptLike, opt: Any) -> tuple[str, int | None]:
        body = self.body(prompt, opt)
        o = self.options
        for attempt in range(o.retries + 1):
            if self._stop.is_set():
                raise _NotAsked(prompt.id)
            try:
                return self._post(body)
            except _Retry as exc:
                if attempt == o.retries:
                    raise ServerError(
                        f"item {prompt.id}: {exc} (after {attempt + 1} tries)"
                    ) from None
                delay = exc.wait_s if exc.wait_s is not None else o.backoff * 2**attempt
                if self._stop.wait(min(delay, MAX_BACKOFF)):
                    raise _NotAsked(prompt.id) from None
            except ServerError as exc:
                raise ServerError(f"item {prompt.id}: {exc}") from None
        raise AssertionError("unreachable")

    def answer(
        self,
        prompts: Sequence[PromptLike],
        opt: Any,
        on_answer: Callable[[str, str], None],
        log: Callable[[str], None] = lambda s: None,
    ) -> dict[str, Any]:
        """Ask every prompt, ``concurrency`` at a time; ``on_answer`` runs in this thread."""
        tokens: int | None = 0
        done = 0
        self._stop.clear()
        self._error = None
        with _Requests(max_workers=self.options.concurrency) as pool:
            pending: dict[Future, PromptLike] = {pool.submit(self.ask, p, opt): p for p in prompts}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    failed = False
                    for future in finished:
                        prompt = pending.pop(future)
                        if future.exception() is not None:
                            failed = True
                            continue
                        text, used = future.result()
                        on_answer(prompt.id, text)
                        done += 1
                        tokens = None if tokens is None or used is None else tokens + used
                    if failed:  # the answers that came are written; the run stops
                        for future in pending:
                            future.cancel()
                        wait(pending)
                        for future, prompt in pending.items():  # in flight when it failed
                            if not future.cancelled() and future.exception() is None:
                                on_answer(prompt.id, future.result()[0])
                        raise self._error or next(
                            e for f in finished if (e := f.exception()) is not None
                        )
                    log(f"{done}/{len(prompts)} answered")
            except BaseException:
                self._stop.set()
                for future in pending:
                    future.cancel()
                raise
        return {"answers": done, "tokens_generated": tokens}


class _Requests(ThreadPoolExecutor):
    """Threads asking side by side; left by an exception (a signal, a failed item) they are
    not waited for: each request in flight ends by its own deadline."""

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.shutdown(wait=exc_type is None, cancel_futures=True)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _excerpt(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return repr(text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "...")


class VLLMBackend:
    """vLLM's offline engine (``LLM.chat``) in this process; needs the vllm package (and, in
    practice, a GPU). Not exercised by this project's tests, which run on CPU."""

    name = "vllm"

    def __init__(self, model: str, dtype: str = "auto", tokenizer: str | None = None) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise ModelError(
                "--backend vllm needs vLLM: pip install vllm (on a machine with a GPU it supports)"
            ) from None
        t0 = time.perf_counter()
        self.llm = LLM(
            model=model, tokenizer=tokenizer, dtype=dtype if dtype != "fp32" else "float32"
        )
        self.load_seconds = time.perf_counter() - t0
        self.model = model

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "prompt_format": "chat (the tokenizer's chat template)"}

    def answer(
        self,
        prompts: Sequence[PromptLike],
        opt: Any,
        on_answer: Callable[[str, str], None],
        log: Callable[[str], None] = lambda s: None,
    ) -> dict[str, Any]:
        from vllm import SamplingParams

        params = (
            SamplingParams(
                max_tokens=opt.max_new_tokens,
                temperature=opt.temperature,
                top_p=opt.top_p,
                seed=opt.seed,
            )
            if opt.sample
            else SamplingParams(max_tokens=opt.max_new_tokens, temperature=0.0)
        )
        outputs = self.llm.chat(
            [chat_messages(p.instruction, p.system) for p in prompts], params, use_tqdm=False
        )
        tokens = 0
        for prompt, out in zip(prompts, outputs):
            tokens += len(out.outputs[0].token_ids)
            on_answer(prompt.id, out.outputs[0].text.strip())
        log(f"{len(prompts)}/{len(prompts)} answered")
        return {"answers": len(prompts), "tokens_generated": tokens}
