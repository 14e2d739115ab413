"""Whether the Hugging Face Hub can be reached, asked before a hub name is loaded.

Offline, the hub libraries retry each request for about half a minute and print a warning per
retry before they fail; one quick connection attempt says the same at once, in one line.
With ``HF_HUB_OFFLINE=1`` nothing is probed: the libraries then read their local cache only.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

PROBE_SECONDS = 3.0


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached now, or None when it can (or the cache is to be used)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return (
            f"the Hugging Face Hub cannot be reached ({host}: {why}); give a local path, "
            "or set HF_HUB_OFFLINE=1 to use a copy in the local cache"
        )
    return None
