"""``mosaic-it eval --model M --eval-set EVAL``: generate answers to an evaluation set and score
them."""

from __future__ import annotations

import argparse

from mosaic_it.apps.backends import ServedOptions
from mosaic_it.apps.evaluate import BACKENDS, evaluate, responses_run_path
from mosaic_it.apps.generation import MAX_BATCH, GenerationOptions
from mosaic_it.apps.prompt_formats import PROMPT_FORMATS
from mosaic_it.apps.score import plot
from mosaic_it.cli.registry import Arguments, Command, declare_prompt_format
from mosaic_it.cli.served import progress
from mosaic_it.errors import OptionError
from mosaic_it.io.jsonfiles import write_json
from mosaic_it.io.outputs import Output, guard


def declare(a: Arguments) -> None:
    _declare_generation(a, GenerationOptions())
    _declare_outputs(a)
    _declare_served(a.group("served models (--backend openai)"))


def _declare_generation(a: Arguments, d: GenerationOptions) -> None:
    """The model, the evaluation set, and how answers are generated."""
    a.add(
        "--model",
        required=True,
        help="model directory (e.g. a mosaic-it train output), .gguf file or Hub id; "
        "with --backend openai: the served model's name",
    )
    a.add(
        "--backend",
        choices=BACKENDS,
        default="transformers",
        help="transformers: load the model here (default); openai: ask an "
        "OpenAI-compatible server at --base-url; vllm: vLLM's offline engine here "
        "(needs vllm); llamacpp: a .gguf file with llama.cpp here, on the CPU (needs the "
        "llamacpp extra)",
    )
    a.add("--eval-set", required=True, help="JSONL from mosaic-it make-eval")
    a.add("--tokenizer", help="tokenizer directory or Hub id (default: the model's own)")
    declare_prompt_format(
        a,
        ("auto", *PROMPT_FORMATS),
        "auto",
        "how items are put to the model: vicuna: FastChat Vicuna v1.1; chat: the "
        "tokenizer's chat template; auto: the format the model was trained with by "
        "mosaic-it train, else chat where the tokenizer has a chat template, else vicuna",
    )
    a.add(
        "--max-new-tokens",
        type=int,
        default=d.max_new_tokens,
        help="longest answer (default %(default)s)",
    )
    a.add(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="prompts generated together; 0: as many as fit in --batch-tokens "
        f"(at most {MAX_BATCH}) (default %(default)s)",
    )
    a.add(
        "--batch-tokens",
        type=int,
        default=d.batch_tokens,
        help="with --batch-size 0: prompts x (longest prompt + --max-new-tokens) "
        "per batch (default %(default)s)",
    )
    a.add("--sample", action="store_true", help="sample instead of greedy decoding")
    a.add("--temperature", type=float, default=d.temperature, help="with --sample")
    a.add("--top-p", type=float, default=d.top_p, help="with --sample")
    a.add("--seed", type=int, default=d.seed, help="with --sample")
    a.add(
        "--dtype",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 on a GPU that has it, fp32 otherwise",
    )


def _declare_outputs(a: Arguments) -> None:
    """Scoring, and what is written."""
    a.add(
        "--mode",
        choices=["strict", "loose"],
        default="loose",
        help="how strictly labels and tags are checked (see mosaic-it score; default %(default)s)",
    )
    a.add("--responses", metavar="FILE", help="write the answers here (JSONL)")
    a.add(
        "--resume",
        action="store_true",
        help="keep the answers already in --responses and generate the rest",
    )
    a.add("--out", metavar="FILE", help="write the score table as JSON")
    a.add("--plot", metavar="FILE.png", help="accuracy against instruction count")
    a.add(
        "--threads",
        type=int,
        default=0,
        help="transformers on CPU: torch threads (default 0: the cores not kept busy "
        "by other processes, by load average; answers may differ in rare last-bit "
        "ties across thread counts, so fix it to compare runs exactly)",
    )


def _declare_served(s: Arguments) -> None:
    s.add("--base-url", help="the server's API root, e.g. http://127.0.0.1:8000/v1")
    s.add(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default %(default)s; the key "
        "is never printed or written)",
    )
    s.add(
        "--concurrency",
        type=int,
        default=8,
        help="requests in flight at once (default %(default)s)",
    )
    s.add(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for one reply (default %(default)s)",
    )
    s.add(
        "--retries",
        type=int,
        default=5,
        help="further tries of a request after a 429, a 5xx, a timeout or a reply "
        "that is not a chat completion, with doubling waits (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    if args.resume and not args.responses:
        raise OptionError("--resume needs --responses FILE (the answers to keep)")
    run_file = responses_run_path(args.responses) if args.responses else None
    with guard(
        {"--eval-set": args.eval_set, "--model": args.model, "--tokenizer": args.tokenizer},
        [
            Output(args.responses, "--responses"),
            Output(run_file, "--responses run record"),
            Output(args.out, "--out"),
            Output(args.plot, "--plot"),
        ],
    ):
        return _eval(args)


def _eval(args: argparse.Namespace) -> int:
    opt = GenerationOptions(
        args.max_new_tokens,
        args.batch_size,
        args.sample,
        args.temperature,
        args.top_p,
        args.seed,
        args.threads,
        args.batch_tokens,
    )
    served = None
    if args.backend == "openai":
        if not args.base_url:
            raise OptionError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        served = ServedOptions(
            args.base_url,
            args.model,
            args.api_key_env,
            args.concurrency,
            args.timeout,
            args.retries,
        )
    elif args.base_url:
        raise OptionError("--base-url is for --backend openai")

    report, meta = evaluate(
        args.model,
        args.eval_set,
        tokenizer=args.tokenizer,
        prompt_format=args.prompt_format,
        opt=opt,
        mode=args.mode,
        responses_path=args.responses,
        resume=args.resume,
        dtype=args.dtype,
        backend=args.backend,
        served=served,
        log=progress(args),
    )
    print(
        f"model {meta['model']} ({meta['prompt_format']} prompts, "
        f"{'sampled' if opt.sample else 'greedy'}, up to {opt.max_new_tokens} new tokens)"
    )
    print(report.render())
    if args.out:
        write_json(args.out, {**report.to_dict(), "run": meta})
    if args.plot:
        plot(report, args.plot)
    return 0


COMMAND = Command(
    "eval",
    "generate answers to an evaluation set with a model and score them",
    declare,
    run,
    description="Prompt a model with every item of an evaluation set (mosaic-it make-eval), "
    "generate with transformers here or ask a served model (--backend openai), and verify "
    "every answer against its spec.",
)
