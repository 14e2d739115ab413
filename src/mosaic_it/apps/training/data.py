"""Training data: SFT rows from records of any format, GRPO rows from make-rl-prompts, and
the rows of freshly drawn mosaic epochs for ``--mosaic-on-the-fly``."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mosaic_it.apps.model_source import ModelError
from mosaic_it.apps.prompt_formats import PromptFormat
from mosaic_it.apps.training.config import TrainConfig
from mosaic_it.apps.training.processes import is_main
from mosaic_it.errors import InputError
from mosaic_it.io.readers import InvalidRecord, iter_raw, read_records
from mosaic_it.records import Record

NOTES = logging.getLogger(__name__)  # on stderr at the command line, as -q/-v say


def read_training_records(path: str, on_error: str = "raise") -> list[Record]:
    """Single-pair records of any input format (Alpaca, ShareGPT, messages, prompt-completion),
    original data or the output of ``mosaic-it mosaic``. Multi-turn records are left out, with
    a warning."""
    invalid: list[InvalidRecord] = []
    records = list(read_records(path, on_error=on_error, invalid=invalid))
    if invalid and is_main():
        kinds = Counter(i.reason for i in invalid)
        NOTES.warning(
            f"mosaic-it train: warning: {path}: left out "
            + ", ".join(f"{n} {k} record(s)" for k, n in sorted(kinds.items()))
        )
    if not records:
        raise InputError(f"{path}: no single-turn records to train on")
    return records


def read_rl_rows(path: str, fmt: PromptFormat) -> list[dict[str, Any]]:
    """GRPO rows (``prompt`` + ``mosaic``, as ``mosaic-it make-rl-prompts`` writes them) in the
    prompt format: a Vicuna text prompt, or the messages for the chat template. The spec is
    kept as JSON text (a table column of objects would merge every row's keys); a row whose
    prompt or spec cannot be used stops the run naming its line."""
    from mosaic_it.records import SpecError
    from mosaic_it.verifier.spec import load_spec

    rows = []
    for _, where, obj in iter_raw(path):
        if not isinstance(obj, dict) or "prompt" not in obj or "mosaic" not in obj:
            raise InputError(
                f"{where}: an RL row needs 'prompt' and 'mosaic' fields; make rows "
                "with mosaic-it make-rl-prompts"
            )
        messages = obj["prompt"]
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not (
            isinstance(messages, list)
            and messages
            and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
            and messages[-1].get("role") == "user"
        ):
            raise InputError(
                f"{where}: field 'prompt': expected a text or a list of messages "
                "ending with the user's"
            )
        try:
            spec = load_spec(obj["mosaic"])
        except SpecError as exc:
            raise InputError(f"{where}: field 'mosaic': {exc}") from None
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        prompt = fmt.training_row(messages[-1]["content"], "", system)["prompt"]
        row = {
            "prompt": prompt,
            "mosaic": json.dumps(spec.to_dict(), ensure_ascii=False),
            "id": str(obj.get("id", where)),
        }
        if isinstance(obj.get("reference"), str):
            row["reference"] = obj["reference"]
        if isinstance(obj.get("level"), int):
            row["level"] = obj["level"]  # a curriculum's rows: trained in the file's order
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no RL rows; make some with mosaic-it make-rl-prompts")
    return rows


def training_rows(records: list[Record], fmt: PromptFormat) -> list[dict[str, Any]]:
    return [fmt.training_row(r.prompt, r.output, r.system) for r in records]


def row_lengths(tokenizer: Any, rows: list[dict[str, Any]], fmt: PromptFormat) -> list[int]:
    """Token counts of the training sequences (BOS/template/EOS included), as TRL builds them."""
    if fmt.name == "vicuna":
        texts = [r["prompt"] + r["completion"] for r in rows]
        ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [len(x) + 1 for x in ids]  # + EOS
    out = []
    for r in rows:
        ids = tokenizer.apply_chat_template(
            r["prompt"] + r["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        out.append(len(ids))
    return out


class OnTheFlyRows:
    """Rows of freshly drawn mosaic epochs 0..epochs-1, for ``--mosaic-on-the-fly``.

    The samples come from :class:`mosaic_it.hf.MosaicIterable` (records read and counted once;
    epoch ``e`` equals epoch ``e`` of ``mosaic-it mosaic`` with the same options). The trainer
    gets one stream over all epochs, drawn with ``epoch_rows(e)``, rather than the iterable's
    own epoch counter: TRL's preparation peeks at the dataset several times, and every pass
    must replay the same rows (resuming skips into the same stream).
    """

    def __init__(
        self,
        records: list[Record],
        fmt: PromptFormat,
        epochs: int,
        options: dict[str, Any],
        counter: Any,
    ) -> None:
        from mosaic_it.engine.mosaicker import MosaicConfig
        from mosaic_it.hf import MosaicIterable

        self.fmt = fmt
        self.epochs = epochs
        self.config = MosaicConfig.from_dict({**options, "epochs": epochs})
        self.source = MosaicIterable(
            records, self.config, output_format="alpaca", tokenizer=counter, json_mosaic=False
        )
        self.per_epoch = [sum(1 for _ in self.source.epoch_rows(e)) for e in range(epochs)]

    def __len__(self) -> int:
        return sum(self.per_epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for epoch in range(self.epochs):
            for row in self.source.epoch_rows(epoch):
                yield self.fmt.training_row(
                    row["instruction"], row["output"], row.get("system", "")
                )


def budget_counter(tokenizer: Any) -> Any:
    """A mosaic-it token counter over the training tokenizer's own fast backend."""
    from mosaic_it.budget.tokenizer import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelError("--mosaic-on-the-fly needs a fast (tokenizers-based) tokenizer")
    backend = copy.deepcopy(backend)
    backend.no_truncation()
    backend.no_padding()
    return Tokenizer(
        name=getattr(tokenizer, "name_or_path", "model tokenizer"),
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        backend=backend,
    )


def mosaic_options(config: TrainConfig, tokenizer: Any, fmt: PromptFormat) -> dict[str, Any]:
    """MosaicConfig fields for on-the-fly mosaics: the budget is the training length.

    With the Vicuna format the budget counts the Vicuna sequence exactly; with a chat template
    it counts instruction + response and leaves room for the template's own tokens.
    """
    options = dict(config.mosaic_options or {})
    options.setdefault("seed", config.seed)
    if fmt.name == "vicuna":
        options.setdefault("template", "vicuna")
        options.setdefault("max_tokens", config.max_length)
    else:
        empty = fmt.training_row("", "")
        overhead = len(
            tokenizer.apply_chat_template(
                empty["prompt"] + empty["completion"], tokenize=True, return_dict=True
            )["input_ids"]
        )
        options.setdefault("template", "none")
        options.setdefault("max_tokens", config.max_length - overhead - 4)
    options.pop("tokenizer", None)
    return options
