"""Prompt formats: the Vicuna text of the method's paper, chat messages, generation prompts."""

from __future__ import annotations

import pytest

from mosaic_it.apps.model_source import ModelError
from mosaic_it.apps.prompt_formats import (
    PromptFormat,
    chat_messages,
    generation_prompt,
    prompt_format,
)
from mosaic_it.budget.templates import TEMPLATES, VICUNA_SYSTEM

from ..conftest import needs

# FastChat's Vicuna v1.1 conversation, written out: system, " USER: ", instruction, " ASSISTANT:"
FASTCHAT = "{system} USER: {instruction} ASSISTANT:"


@pytest.mark.parametrize("system", ["", "You answer in French."])
def test_vicuna_row_is_fastchats_text(system):
    row = PromptFormat("vicuna").training_row("Name a colour.", "Blue.", system)
    expected = FASTCHAT.format(system=system or VICUNA_SYSTEM, instruction="Name a colour.")
    assert row == {"prompt": expected, "completion": " Blue."}
    # prompt + completion is the vicuna template's training sequence, as the budget counts it
    assert row["prompt"] + row["completion"] == TEMPLATES["vicuna"].render(
        "Name a colour.", "Blue.", system
    )


def test_chat_row_is_messages():
    row = PromptFormat("chat").training_row("Name a colour.", "Blue.", "Be brief.")
    assert row == {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a colour."},
        ],
        "completion": [{"role": "assistant", "content": "Blue."}],
    }
    assert chat_messages("Hi") == [{"role": "user", "content": "Hi"}]


def test_generation_prompt_ends_where_the_answer_begins():
    assert generation_prompt(TEMPLATES["vicuna"], "Hi") == f"{VICUNA_SYSTEM} USER: Hi ASSISTANT:"
    chatml = generation_prompt(TEMPLATES["chatml"], "Hi", "Be brief.")
    assert chatml == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    llama3 = generation_prompt(TEMPLATES["llama3"], "Hi")
    assert llama3.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_vicuna_generation_ids_are_the_prompts_tokens():
    needs("torch")  # the bundled tokenizer loads through mosaic_it.apps.models
    needs("transformers")
    from mosaic_it.apps.models import bundled_hf_tokenizer

    tok = bundled_hf_tokenizer()
    ids = PromptFormat("vicuna").generation_ids(tok, "Name a colour.")
    assert ids == tok(FASTCHAT.format(system=VICUNA_SYSTEM, instruction="Name a colour.")).input_ids
    assert ids[0] == tok.bos_token_id


def test_unknown_format_and_chat_without_template_are_refused():
    with pytest.raises(ModelError, match="unknown prompt format 'alpaca'"):
        prompt_format("alpaca")

    class NoTemplate:
        chat_template = None

    with pytest.raises(ModelError, match="no chat template"):
        prompt_format("chat", NoTemplate())
    assert prompt_format("vicuna", NoTemplate()) == PromptFormat("vicuna")
