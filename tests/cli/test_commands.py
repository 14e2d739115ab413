"""The command registry: every command's --help, and the flags renamed for one meaning each."""

from __future__ import annotations

import json

import pytest

from mosaic_it.cli.commands import COMMANDS
from mosaic_it.cli.main import build_parser, main

from ..chat_fixtures import qwen_dir  # noqa: F401 - fixture
from ..conftest import needs

TINY = "builtin:tiny-llama"
DEPRECATED = "--template is deprecated and will be removed; use --prompt-format"


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_registered_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: mosaic-it {name} ")


def test_the_parser_holds_the_registry_in_order():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert "{" + ",".join(names) + "}" in build_parser().format_usage()


@pytest.mark.parametrize("command", ["mosaic", "cost", "stats", "make-eval", "make-rl-prompts"])
def test_template_is_the_chat_template_everywhere(command, capsys):
    """--template takes the budget's template names in every command that has it as such."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    usage = capsys.readouterr().out
    assert "{vicuna,chatml,llama3,none,reference,auto}" in usage.replace("\n", "")


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "d.json"
    rows = [
        {"instruction": f"Name the number {i}.", "input": "", "output": f"It is {i}."}
        for i in range(8)
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_train_template_is_a_deprecated_alias_of_prompt_format(records, tmp_path, capsys):
    needs("trl")
    out = tmp_path / "run"
    base = ["train", str(records), "--model", TINY, "--output-dir", str(out)]
    small = [
        "--batch-size",
        "2",
        "--micro-batch-size",
        "2",
        "--max-steps",
        "1",
        "--max-length",
        "64",
    ]
    # the value reaches the trainer: the tiny model's tokenizer has no chat template
    assert main([*base, "--template", "chat", *small]) == 2
    err = capsys.readouterr().err
    assert err.count(DEPRECATED) == 1 and "--prompt-format chat" in err
    assert "--prompt-format chat: this tokenizer has no chat template" in err
    # and a run with it works as with --prompt-format
    assert main([*base, "--template", "vicuna", *small]) == 0
    err = capsys.readouterr().err
    assert err.count(DEPRECATED) == 1 and "1 steps" in err
    saved = json.loads((out / "mosaic_it_train.json").read_text(encoding="utf-8"))
    assert saved["config"]["prompt_format"] == "vicuna"
    # one of the two, not both
    with pytest.raises(SystemExit):
        main([*base, "--prompt-format", "chat", "--template", "vicuna", *small])
    assert "not allowed with argument --prompt-format" in capsys.readouterr().err


def test_eval_template_is_a_deprecated_alias_of_prompt_format(tmp_path, capsys):
    needs("torch")
    needs("transformers")
    eval_set = tmp_path / "eval.jsonl"
    make = ["make-eval", "builtin:example", str(eval_set), "--n", "2", "--max-instructions", "2"]
    assert main([*make, "-q"]) == 0
    base = ["eval", "--model", TINY, "--eval-set", str(eval_set), "--max-new-tokens", "2", "-q"]
    assert main([*base, "--template", "chat"]) == 2
    err = capsys.readouterr().err
    assert err.count(DEPRECATED) == 1
    assert "--prompt-format chat: this tokenizer has no chat template" in err
    assert main([*base, "--template", "vicuna"]) == 0
    printed = capsys.readouterr()
    assert printed.err.count(DEPRECATED) == 1
    assert "(vicuna prompts, greedy" in printed.out
    assert main([*base, "--prompt-format", "vicuna"]) == 0
    assert DEPRECATED not in capsys.readouterr().err


def test_make_eval_takes_the_tokenizers_own_template(tmp_path, capsys):
    """auto (as in mosaic --template auto) needs --tokenizer: without one it is exit 2."""
    out = tmp_path / "eval.jsonl"
    assert main(["make-eval", "builtin:example", str(out), "--n", "2", "--template", "auto"]) == 2
    assert "template 'auto' renders with the tokenizer's own chat_template" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_make_eval_with_the_tokenizers_own_template(qwen_dir, tmp_path):  # noqa: F811
    out = tmp_path / "eval.jsonl"
    args = ["make-eval", "builtin:example", str(out), "--n", "2", "--max-instructions", "2"]
    assert main([*args, "--template", "auto", "--tokenizer", str(qwen_dir), "-q"]) == 0
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert items and all(i["chat_prompt"].startswith("<|im_start|>") for i in items)
    assert all(i["mosaic"]["template"] == "auto" for i in items)
