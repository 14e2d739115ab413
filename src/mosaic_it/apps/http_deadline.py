"""One HTTP request with a deadline for the whole of it.

``urllib``'s ``timeout`` bounds each wait on the socket, not the request: a server that sends
one byte a second keeps a request alive forever. :func:`fetch_within` arms a timer that shuts
the request's socket down when its time is up, whatever the server sends meanwhile, and then
raises :class:`TimeoutError`.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import urllib.error
import urllib.request
from typing import Any


class _Deadline:
    """What a request's timer shuts down: the connections it opened."""

    def __init__(self) -> None:
        self.expired = threading.Event()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def add(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)

    def cut(self) -> None:
        with self._lock:
            self.expired.set()
            for connection in self._connections:
                _shut(connection)


def _shut(connection: http.client.HTTPConnection) -> None:
    if connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


class _Tracked:
    """A urllib handler whose connections are known to the request's :class:`_Deadline`."""

    def __init__(self, deadline: _Deadline, *args: Any) -> None:
        super().__init__(*args)
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        deadline = self.deadline

        def connection(host: str, **options: Any) -> http.client.HTTPConnection:
            made = http_class(host, **options)
            connect = made.connect

            def connect_in_time() -> None:
                connect()
                if deadline.expired.is_set():  # the time ran out while connecting
                    _shut(made)

            made.connect = connect_in_time
            deadline.add(made)
            return made

        return super().do_open(connection, req, **kwargs)  # type: ignore[misc]


class _HTTP(_Tracked, urllib.request.HTTPHandler):
    pass


class _HTTPS(_Tracked, urllib.request.HTTPSHandler):
    pass


def fetch_within(request: urllib.request.Request, seconds: float) -> bytes:
    """The whole body of the reply to ``request``, or :class:`TimeoutError` once ``seconds``
    have passed since it began. An error status raises :class:`urllib.error.HTTPError` with
    its body already read (within the same deadline)."""
    deadline = _Deadline()
    opener = urllib.request.build_opener(_HTTP(deadline), _HTTPS(deadline))
    timer = threading.Timer(seconds, deadline.cut)
    timer.daemon = True
    timer.start()
    try:
        try:
            with opener.open(request, timeout=seconds) as reply:
                body = reply.read()
        except urllib.error.HTTPError as exc:
            error_body = exc.read() if exc.fp else b""
            if deadline.expired.is_set():
                raise TimeoutError(f"no complete reply within {seconds:g} s") from None
            raise urllib.error.HTTPError(
                exc.url, exc.code, exc.msg, exc.headers, io.BytesIO(error_body)
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired.is_set():
                raise TimeoutError(f"no complete reply within {seconds:g} s") from None
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"the reply broke off ({type(exc).__name__})") from None
        if deadline.expired.is_set():  # a body cut short by the shutdown
            raise TimeoutError(f"no complete reply within {seconds:g} s")
        return body
    finally:
        timer.cancel()
