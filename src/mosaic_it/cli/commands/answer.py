"""``mosaic-it answer PROMPTS --model NAME --base-url URL --responses FILE``: a served model's
answers to an open-ended prompt set (AlpacaEval, MT-Bench's two turns, a file), for
``mosaic-it judge``."""

from __future__ import annotations

import argparse

from mosaic_it.apps.answer import answer_backend, answer_prompt_set
from mosaic_it.apps.evaluate import responses_run_path
from mosaic_it.apps.generation import GenerationOptions
from mosaic_it.apps.prompt_formats import PROMPT_FORMATS
from mosaic_it.apps.prompt_sets import BUILTIN_SETS, read_prompt_set
from mosaic_it.cli.commands.eval import _declare_served
from mosaic_it.cli.registry import Arguments, Command, declare_prompt_format
from mosaic_it.cli.served import progress, served_options
from mosaic_it.errors import OptionError
from mosaic_it.io.outputs import Output, guard


def declare(a: Arguments) -> None:
    d = GenerationOptions()
    sets = ", ".join(f"builtin:{n}" for n in BUILTIN_SETS)
    a.add("prompts", metavar="PROMPTS", help=f"the prompt set: {sets}, or a JSON/JSONL file")
    a.add(
        "--model",
        required=True,
        help="with --backend openai: the served model's name; with transformers: a model "
        "directory (e.g. a mosaic-it train output), .gguf file or Hub id",
    )
    a.add(
        "--backend",
        choices=("openai", "transformers", "llamacpp"),
        default="openai",
        help="openai: ask an OpenAI-compatible server at --base-url (default); transformers: "
        "load the model here; llamacpp: a .gguf file with llama.cpp here (the llamacpp extra)",
    )
    a.add(
        "--tokenizer",
        help="with --backend transformers or llamacpp: tokenizer (default: the model's)",
    )
    declare_prompt_format(
        a,
        ("auto", *PROMPT_FORMATS),
        "auto",
        "with --backend transformers or llamacpp: how a conversation is put to the model "
        "(vicuna, chat, or auto: as for mosaic-it eval)",
    )
    a.add(
        "--dtype",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="with --backend transformers: auto: bf16 on a GPU that has it, fp32 otherwise",
    )
    a.add("--responses", required=True, metavar="FILE", help="write the answers here (JSONL)")
    a.add("--resume", action="store_true", help="keep the answers in --responses, ask the rest")
    a.add("--system", default="", help="a system message put before every conversation")
    a.add("--limit", type=int, default=0, help="only the first N prompts (0: all)")
    a.add(
        "--max-new-tokens",
        type=int,
        default=d.max_new_tokens,
        help="longest answer (default %(default)s)",
    )
    a.add("--sample", action="store_true", help="sample instead of greedy decoding")
    a.add("--temperature", type=float, default=d.temperature, help="with --sample")
    a.add("--top-p", type=float, default=d.top_p, help="with --sample")
    a.add("--seed", type=int, default=d.seed, help="with --sample")
    _declare_served(a.group("the model's server (--backend openai)"))


def run(args: argparse.Namespace) -> int:
    # the server's options are checked before any file is read
    served = served_options(args, args.model) if args.backend == "openai" else None
    if args.limit < 0:
        raise OptionError("--limit must be 0 (all) or more")
    inputs = {} if args.prompts.startswith("builtin:") else {"PROMPTS": args.prompts}
    with guard(
        inputs,
        [
            Output(args.responses, "--responses"),
            Output(str(responses_run_path(args.responses)), "--responses run record"),
        ],
    ):
        items = read_prompt_set(args.prompts)
        if args.limit:
            items = items[: args.limit]
        opt = GenerationOptions(
            max_new_tokens=args.max_new_tokens,
            sample=args.sample,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
        )
        log = progress(args)

        backend = answer_backend(
            args.backend,
            args.model,
            served,
            tokenizer=args.tokenizer,
            prompt_format=args.prompt_format,
            dtype=args.dtype,
        )
        counts = answer_prompt_set(
            items,
            backend,
            args.responses,
            model=args.model,
            prompt_set=args.prompts if not args.limit else f"{args.prompts} (first {args.limit})",
            opt=opt,
            system=args.system,
            resume=args.resume,
            log=log,
        )
    print(
        f"{counts['answers']} answers in {args.responses} ({counts['asked']} asked, "
        f"{counts['kept']} kept)"
    )
    return 0


COMMAND = Command(
    "answer",
    "a served model's answers to an open-ended prompt set, for mosaic-it judge",
    declare,
    run,
    description="Ask a model behind an OpenAI-compatible server every prompt of a prompt set "
    "(builtin:alpaca-eval, builtin:mt-bench, or a JSON/JSONL file in the common shapes); a "
    "second turn is asked with the first turn's answer in the conversation. Answers are "
    "written as they come; --resume asks only for the missing ones.",
)
