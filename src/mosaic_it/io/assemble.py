"""Output assembly of a mosaic run: everything written beside or after the samples.

The samples of a run come from an executor (local epochs or Ray shards); what makes them one
output is the same for every executor and lives here: the rows in their one order (samples,
then the original pairs with ``--keep-originals``, then multi-turn records passed through with
``--keep-multiturn``), the LLaMA-Factory ``dataset_info.json`` entry, the rejects and stats
files, the effective options beside the output, and the one-line account of what was written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mosaic_it.errors import InputError, OptionError
from mosaic_it.io.atomic import atomic_writer
from mosaic_it.io.formats import conversation_to_row, record_to_row, sample_to_row
from mosaic_it.io.jsonfiles import read_json_lines, write_json, write_records
from mosaic_it.io.llamafactory import dataset_info_entry
from mosaic_it.io.writers import RowSpool, config_path_for, staging_path, write_rows
from mosaic_it.records import Record, Sample

if TYPE_CHECKING:
    from mosaic_it.engine.mosaicker import MosaicConfig
    from mosaic_it.engine.summary import RunSummary


@dataclass(frozen=True)
class RunOutputs:
    """Where one mosaic run writes, and what it writes beside the samples."""

    output: str
    output_format: str = "alpaca"
    rejects: str | None = None
    stats: str | None = None
    dataset_info: str | None = None
    keep_originals: bool = False
    keep_multiturn: bool = False


class RowAssembly:
    """The rows of one output in their one order: samples, then the original pairs
    (``keep_originals``), then the multi-turn records passed through (``keep_multiturn``).

    Every door takes its rows from here: the local run's output file (:class:`Assembly`),
    each Ray shard and :func:`mosaic_it.hf.mosaic_dataset`. Hand :attr:`on_conversation` to
    the reader and pass the records through :meth:`noting_systems` while they are read; then
    :meth:`rows` gives the output's rows and :attr:`written` how many of each kind.
    ``spool``: passed-through rows wait in a temporary file rather than in memory.
    """

    def __init__(
        self,
        output_format: str = "alpaca",
        *,
        keep_originals: bool = False,
        keep_multiturn: bool = False,
        spool: bool = False,
    ) -> None:
        self.output_format = output_format
        self.keep_originals = keep_originals
        self.keep_multiturn = keep_multiturn
        self._spool = RowSpool() if keep_multiturn and spool else None
        self._passed: list[dict[str, Any]] = []
        self.columns: set[str] = set()  # columns beyond the format's own (system, history)
        self.written = {"samples": 0, "originals": 0, "multi_turn": 0}

    @property
    def on_conversation(self) -> Callable[[Any], None] | None:
        """What a reader hands multi-turn records to: kept with ``keep_multiturn`` only."""
        return self.keep_conversation if self.keep_multiturn else None

    def keep_conversation(self, conversation: Any) -> None:
        """Pass a multi-turn record through (``--keep-multiturn``)."""
        row = conversation_to_row(conversation, self.output_format)
        self.columns.update(row)
        if self._spool is not None:
            self._spool.add(row)
        else:
            self._passed.append(row)

    def noting_systems(self, records: Iterable[Record]) -> Iterator[Record]:
        """``records`` as they are, noting whether any has a system prompt (a column)."""
        for r in records:
            if r.system:
                self.columns.add("system")
            yield r

    def sample_row(self, sample: Sample) -> dict[str, Any]:
        """One sample as a row of the output format."""
        return sample_to_row(sample, self.output_format)

    def rows(
        self,
        samples: Iterable[dict[str, Any]],
        store: Sequence[Record] = (),
        admitted: Sequence[int] = (),
    ) -> Iterator[dict[str, Any]]:
        """The output's rows: ``samples`` (rows already), then ``store[i]`` for ``i`` in
        ``admitted`` with ``keep_originals``, then the passed-through rows; counted into
        :attr:`written` as they go."""
        fmt, written = self.output_format, self.written
        for row in samples:
            written["samples"] += 1
            yield row
        if self.keep_originals:
            for i in admitted:
                written["originals"] += 1
                yield record_to_row(store[i], fmt)
        passed = self._spool.rows() if self._spool is not None else iter(self._passed)
        for row in passed:
            written["multi_turn"] += 1
            yield row

    def close(self) -> None:
        """Remove the passed-through rows' temporary file, if any."""
        if self._spool is not None:
            self._spool.close()


class Assembly:
    """The output file of one local run, from its :class:`RowAssembly`: the samples of a JSON
    or JSONL output with nothing to add go straight to the output (:attr:`direct`); otherwise
    they are staged beside it (:attr:`samples_path`) and the output is written from the stage,
    the originals and the passed-through rows.
    """

    def __init__(self, outputs: RunOutputs, kind: str) -> None:
        self.outputs = outputs
        self.kind = kind
        self.info = check_dataset_info(outputs, kind)
        self.rows = RowAssembly(
            outputs.output_format,
            keep_originals=outputs.keep_originals,
            keep_multiturn=outputs.keep_multiturn,
            spool=True,
        )
        self.direct = (
            kind in ("json", "jsonl") and not outputs.keep_originals and not outputs.keep_multiturn
        )
        self.samples_path = Path(outputs.output) if self.direct else staging_path(outputs.output)
        self.done = False  # the output is written

    def write(
        self, samples: int, store: Sequence[Record], admitted: Sequence[int]
    ) -> dict[str, int]:
        """Write the output (and its dataset_info entry); returns the rows written per kind.
        ``store[i]`` for ``i`` in ``admitted`` are the originals ``--keep-originals`` adds."""
        fmt, rows = self.outputs.output_format, self.rows
        if self.kind in ("parquet", "datasets") and fmt in ("alpaca", "sharegpt"):
            rows.columns.add("system")  # a column in every row of a table
        if self.direct:
            rows.written["samples"] = samples
        else:
            try:
                out = rows.rows(read_json_lines(self.samples_path), store, admitted)
                write_rows(self.outputs.output, out, fmt, rows.columns)
            finally:
                self.samples_path.unlink(missing_ok=True)
                rows.close()
        if self.info is not None:
            assert self.outputs.dataset_info is not None  # info is read from it
            write_dataset_info(
                self.outputs.dataset_info, self.info, self.outputs.output, fmt, rows.columns
            )
        self.done = True
        return dict(rows.written)


def check_dataset_info(outputs: RunOutputs, kind: str) -> dict | None:
    """The dataset_info.json to add the output's entry to, checked before the run (None
    without ``--dataset-info``)."""
    if not outputs.dataset_info:
        return None
    dataset_info_entry(outputs.output_format, "", set())  # fails for formats LLaMA-Factory lacks
    if kind == "datasets":
        raise OptionError(
            "--dataset-info: LLaMA-Factory reads files, not save_to_disk directories; "
            "write .json, .jsonl or .parquet"
        )
    return read_dataset_info(Path(outputs.dataset_info))


def read_dataset_info(path: Path) -> dict:
    """The entries of a dataset_info.json ({} when it does not exist yet)."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--dataset-info {path}: not valid JSON ({exc}); fix or remove it (it was not changed)"
        ) from None
    if not isinstance(info, dict):
        raise InputError(
            f"--dataset-info {path}: expected a JSON object of dataset entries, got "
            f"{type(info).__name__}; it was not changed"
        )
    return info


def write_dataset_info(
    info_file: str | Path, info: dict, output: str, fmt: str, columns: set[str]
) -> None:
    """Add (or replace) the output's entry in a LLaMA-Factory dataset_info.json."""
    path = Path(info_file)
    file_name = os.path.relpath(Path(output).resolve(), path.resolve().parent)
    info[Path(output).stem] = dataset_info_entry(fmt, file_name, columns)
    write_json(path, info)


def write_side_files(
    outputs: RunOutputs,
    config: MosaicConfig,
    summary: RunSummary,
    output: dict[str, Any] | None,
) -> dict[str, Any]:
    """The rejects and stats files, each written atomically; returns the stats document."""
    if outputs.rejects:
        write_records(outputs.rejects, summary.rejected + summary.invalid)
    stats = {"config": config.to_dict(), "summary": summary.to_dict()}
    if output is not None:
        stats["output"] = output
    if outputs.stats:
        write_json(outputs.stats, stats)
    return stats


def write_config(output: str, config_text: str) -> Path:
    """The effective options beside the output (``OUTPUT.config.yaml``), left untouched when
    they are the same; returns the file."""
    config_file = config_path_for(output)
    if not config_file.exists() or config_file.read_text(encoding="utf-8") != config_text:
        with atomic_writer(config_file) as out:
            out.write(config_text)
    return config_file


def finish_run(
    outputs: RunOutputs,
    config: MosaicConfig,
    summary: RunSummary,
    output: dict[str, Any],
    config_text: str,
    place_config: Callable[[dict[str, Any]], str | Path | None] | None = None,
) -> str:
    """What every executor writes after its samples: rejects, stats and the effective options
    (beside the output, or where ``place_config(stats)`` puts them). Returns the account of
    the run for the terminal: what was written where, and the summary."""
    stats = write_side_files(outputs, config, summary, output)
    if place_config is None:
        config_file: str | Path | None = write_config(outputs.output, config_text)
    else:
        config_file = place_config(stats)
    written = output["rows"]
    more = "".join(
        f", {n} {what}"
        for what, n in (
            ("originals", written["originals"]),
            ("multi-turn records passed through", written["multi_turn"]),
        )
        if n
    )
    where = (
        f"{output['shards']} {output['shard_format']} shards in {outputs.output}"
        if output["type"] == "shards"
        else "standard output"
        if output["type"] == "stdout"
        else str(outputs.output)
    )
    options = f"options in {config_file}" if config_file else "no options file (OUTPUT is -)"
    return (
        f"mosaic-it: wrote {summary.samples_written} samples{more} to {where} "
        f"({output['format']}); {options}\n" + summary.render()
    )


def refuse_empty_run(
    outputs: RunOutputs, config: MosaicConfig, summary: RunSummary, source: Path
) -> None:
    """No record can be mosaicked: write the side files (they say what was left out) and raise
    an error saying why; the output is not written."""
    if not summary.records_read:
        raise InputError(f"{source}: holds no records; {outputs.output} was not written")
    write_side_files(outputs, config, summary, None)
    reasons = ", ".join(
        f"{n} {why}"
        for why, n in (
            (f"too long for --max-tokens {config.max_tokens}", len(summary.rejected)),
            ("invalid", sum(1 for r in summary.invalid if r["reason"] == "invalid")),
            ("multi-turn", sum(1 for r in summary.invalid if r["reason"] == "multi-turn")),
        )
        if n
    )
    first = (summary.rejected + summary.invalid)[0]["detail"]
    raise InputError(
        f"{source}: none of the {summary.records_read} records can be mosaicked ({reasons}; "
        f"first: {first}); {outputs.output} was not written"
        + ("; the list is in --rejects" if outputs.rejects else "; --rejects FILE lists them")
    )
