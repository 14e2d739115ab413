"""Chat templates render as FastChat and transformers do, and the budget stays exact with each."""

from __future__ import annotations

import json

import pytest

from mosaic_it import MosaicConfig, Mosaicker, Record, load_tokenizer
from mosaic_it.budget.templates import TemplateError, get_template, template_from_chat_template

from ..chat_fixtures import (
    CHATML_TEMPLATE,
    LLAMA3_TEMPLATE,
    chat_ids,
    hf_tokenizer,
    llama3_dir,  # noqa: F401 - fixtures
    messages_of,
    qwen_dir,  # noqa: F401
)
from ..conftest import make_records, needs

SYSTEMS = ["", "You are a terse assistant.", "  Reply in French.\n", "Think first.\n\nThen answer."]
CONTENTS = [
    ("Name a fruit.", "Apple."),
    ("  leading spaces\n", "\ntrailing newline\n"),
    ("Two\n\nparagraphs", "An answer with <b>markup</b> and émoji 🙂"),
]


def records(n: int = 40) -> list[Record]:
    """Records with system prompts and outputs ending in whitespace (which llama3 trims)."""
    out = []
    for i, r in enumerate(make_records(n, seed=5, max_words=120)):
        output = r.output + ("\n" if i % 5 == 0 else "")
        out.append(Record(r.id, r.instruction, output, r.input, SYSTEMS[i % len(SYSTEMS)]))
    return out


def test_vicuna_matches_fastchat():
    conversation = needs("fastchat.conversation")
    t = get_template("vicuna")
    for system in SYSTEMS:
        for instruction, response in CONTENTS:
            conv = conversation.get_conv_template("vicuna_v1.1")
            if system:
                conv.set_system_message(system)
            conv.append_message(conv.roles[0], instruction)
            conv.append_message(conv.roles[1], response)
            # FastChat writes EOS as "</s>" text; the template counts it as the EOS token
            assert conv.get_prompt() == t.render(instruction, response, system) + "</s>"


def test_chatml_and_llama3_match_transformers(qwen_dir, llama3_dir):  # noqa: F811
    for name, directory, chat_template in (
        ("chatml", qwen_dir, CHATML_TEMPLATE),
        ("llama3", llama3_dir, LLAMA3_TEMPLATE),
    ):
        tok = hf_tokenizer(directory)
        t = get_template(name)
        for system in SYSTEMS:
            for instruction, response in CONTENTS:
                expected = tok.apply_chat_template(
                    messages_of(instruction, response, system),
                    tokenize=False,
                    chat_template=chat_template,
                )
                assert t.render(instruction, response, system) == expected, (
                    name,
                    system,
                    instruction,
                )


def test_auto_derives_the_tokenizers_own_template(qwen_dir, llama3_dir):  # noqa: F811
    for directory in (qwen_dir, llama3_dir):
        tok = hf_tokenizer(directory)
        t = template_from_chat_template(str(directory))
        assert t.name == "auto" and t.system_prefix is not None
        for system in SYSTEMS:
            for instruction, response in CONTENTS:
                expected = tok.apply_chat_template(
                    messages_of(instruction, response, system), tokenize=False
                )
                assert t.render(instruction, response, system) == expected
    # Qwen's template strips leading newlines of the answer; Llama-3.2's trims every content
    assert template_from_chat_template(str(qwen_dir)).transforms == (
        "keep",
        "keep",
        "lstrip_newlines",
    )
    assert template_from_chat_template(str(llama3_dir)).transforms == ("strip", "strip", "strip")


def test_auto_refuses_templates_it_cannot_reproduce(tmp_path):
    needs("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    tiny = Tokenizer(models.WordLevel({"[UNK]": 0, "<|im_end|>": 1}, unk_token="[UNK]"))
    tiny.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer_json = tmp_path / "tokenizer.json"
    tiny.save(str(tokenizer_json))

    def directory(name: str, chat_template: str | None) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "tokenizer.json").symlink_to(tokenizer_json)
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>"}
        if chat_template is not None:
            config["chat_template"] = chat_template
        (d / "tokenizer_config.json").write_text(json.dumps(config))
        return str(d)

    with pytest.raises(TemplateError, match="has no chat_template"):
        template_from_chat_template(directory("none", None))
    upper = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | upper }}\n{% endfor %}"
    with pytest.raises(TemplateError, match="does not write a user message then an assistant"):
        template_from_chat_template(directory("upper", upper))
    counted = "{% for m in messages %}{{ m['content'] }} ({{ m['content'] | length }}){% endfor %}"
    with pytest.raises(TemplateError, match="differently depending on the message"):
        template_from_chat_template(directory("counted", counted))
    no_system = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}" + CHATML_TEMPLATE
    )
    t = template_from_chat_template(directory("nosys", no_system))
    assert (
        t.system_prefix is None
        and t.render("a", "b")
        == "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
    )
    with pytest.raises(TemplateError, match="no place for a system prompt"):
        t.render("a", "b", "be kind")


def _expected_tokens(template: str, tokenizer_kind: str, dirs: dict, sample) -> int:
    """The sample's length as the trainer's own tokenization gives it."""
    messages = messages_of(sample.instruction, sample.output, sample.system)
    if tokenizer_kind == "bundled":
        tok = load_tokenizer()
        if template == "none":
            return sum(tok.count(t) for t in (sample.instruction, sample.output, sample.system))
        if template == "vicuna":
            conversation = needs("fastchat.conversation")
            conv = conversation.get_conv_template("vicuna_v1.1")
            if sample.system:
                conv.set_system_message(sample.system)
            conv.append_message(conv.roles[0], sample.instruction)
            conv.append_message(conv.roles[1], sample.output)
            prompt = conv.get_prompt()
            assert prompt.endswith("</s>")
            return 1 + tok.count(prompt[: -len("</s>")]) + 1  # BOS, the text, EOS
        # chatml rendered by transformers, counted by the bundled (word-local) tokenizer
        hf = hf_tokenizer(dirs["qwen"])
        text = hf.apply_chat_template(messages, tokenize=False, chat_template=CHATML_TEMPLATE)
        return tok.count(text)
    hf = hf_tokenizer(dirs[tokenizer_kind])
    chat_template = {"chatml": CHATML_TEMPLATE, "llama3": LLAMA3_TEMPLATE}.get(template)
    return len(chat_ids(hf, messages, chat_template))


@pytest.mark.parametrize(
    "template,tokenizer_kind",
    [
        ("vicuna", "bundled"),
        ("none", "bundled"),
        ("chatml", "bundled"),
        ("chatml", "qwen"),
        ("llama3", "llama3"),
        ("auto", "qwen"),
        ("auto", "llama3"),
    ],
)
def test_budget_is_exact_with_every_template(template, tokenizer_kind, qwen_dir, llama3_dir):  # noqa: F811
    dirs = {"qwen": qwen_dir, "llama3": llama3_dir}
    budget = 450
    tokenizer = None if tokenizer_kind == "bundled" else str(dirs[tokenizer_kind])
    config = MosaicConfig(
        epochs=1, max_tokens=budget, template=template, tokenizer=tokenizer, seed=3
    )
    m = Mosaicker(config)
    samples = list(m.run(records()))
    assert len(samples) > 5 and any(s.system for s in samples)
    assert any(s.spec.instructions > 1 for s in samples)
    for s in samples:
        assert s.spec.tokens == _expected_tokens(template, tokenizer_kind, dirs, s) <= budget
