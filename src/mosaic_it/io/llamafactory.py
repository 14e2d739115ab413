"""LLaMA-Factory's ``dataset_info.json``: how it finds the columns of each dataset format."""

from __future__ import annotations

from typing import Any

from mosaic_it.errors import OptionError


def dataset_info_entry(fmt: str, file_name: str, columns: set[str]) -> dict[str, Any]:
    """The LLaMA-Factory ``dataset_info.json`` entry for an output in format ``fmt``.

    ``columns`` are the top-level fields the written rows have (``system`` and ``history``
    are mapped only when present, since LLaMA-Factory reads every mapped column).
    """
    if fmt == "alpaca":
        cols = {"prompt": "instruction", "query": "input", "response": "output"}
        for name in ("system", "history"):
            if name in columns:
                cols[name] = name
        return {"file_name": file_name, "formatting": "alpaca", "columns": cols}
    if fmt == "sharegpt":
        cols = {"messages": "conversations"}
        if "system" in columns:
            cols["system"] = "system"
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": cols,
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "system_tag": "system",
            },
        }
    if fmt == "messages":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    raise OptionError(
        f"LLaMA-Factory has no formatting for {fmt!r} rows: write --output-format alpaca, "
        "sharegpt or messages for --dataset-info"
    )
