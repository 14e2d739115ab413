"""The effective options of a run, as the YAML written beside its output (``OUTPUT.config.yaml``).

With it, ``mosaic-it mosaic --config OUTPUT.config.yaml`` runs the same command again and writes
the same bytes. The command line renders its parsed options here, and a job built in Python
(:class:`mosaic_it.executors.job.MosaicJob`) renders the same options the same way, so the two
doors write the same file.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# options holding paths; outputs are always paths, inputs only when they exist (else a name)
OUTPUT_KEYS = {"output", "rejects", "stats", "dataset_info"}
INPUT_KEYS = {"input", "tokenizer", "rules"}
BUILTIN_PREFIX = "builtin:"


def _portable(key: str, value: Any, base: Path) -> Any:
    """A path value written relative to the config file's directory."""
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, str) or not value or value.startswith(BUILTIN_PREFIX):
        return value
    if key in OUTPUT_KEYS or (key in INPUT_KEYS and os.path.exists(value)):
        rel = os.path.relpath(Path(value).resolve(), base)
        return rel + ("/" if value.endswith("/") else "")
    return value


def shell_word(text: str) -> str:
    """``text`` as one word of a POSIX shell command on one line: quoted where needed, and a
    name holding a line break or another control character in bash's ``$'...'`` form (so a
    comment that shows it stays one line, whatever the file is called)."""
    if text.isprintable():
        return shlex.quote(text)
    escaped = "".join(
        {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c)
        or (c if c.isprintable() else _escape(ord(c)))
        for c in text
    )
    return f"$'{escaped}'"


def _escape(code: int) -> str:
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def render_options(values: Mapping[str, Any], config_file: Path) -> str:
    """The YAML of every option of a run (in the order given), paths relative to
    ``config_file``'s directory."""
    import yaml

    base = config_file.resolve().parent
    portable = {key: _portable(key, value, base) for key, value in values.items()}
    header = (
        "# mosaic-it: the effective options of the run that wrote the output beside this file.\n"
        "# Run it again with: mosaic-it mosaic --config " + shell_word(config_file.name) + "\n"
    )
    return header + yaml.safe_dump(portable, sort_keys=False, allow_unicode=True, width=1000)
