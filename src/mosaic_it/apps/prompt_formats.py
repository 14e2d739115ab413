"""Prompt formats: how an instruction and its response become a training row, and how an
instruction becomes a generation prompt, so that ``train``, ``eval`` and ``make-eval`` agree.

* ``vicuna``: FastChat's Vicuna v1.1 (the method's paper), the text of
  :data:`mosaic_it.budget.templates.TEMPLATES` ``["vicuna"]``: ``<s>`` + system + `` USER: `` +
  instruction + `` ASSISTANT:`` and then `` `` + response + ``</s>``;
* ``chat``: the tokenizer's own chat template (system, user, assistant messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mosaic_it.apps.model_source import ModelError
from mosaic_it.budget.templates import TEMPLATES, Template

__all__ = ["PROMPT_FORMATS", "PromptFormat", "chat_messages", "generation_prompt", "prompt_format"]

PROMPT_FORMATS = ("vicuna", "chat")
VICUNA = TEMPLATES["vicuna"]


def generation_prompt(template: Template, instruction: str, system: str = "") -> str:
    """A template's text up to where the assistant's answer begins.

    FastChat ends a generation prompt at "ASSISTANT:"; the answer's first token holds the space.
    """
    text = template.render(instruction, "", system)
    if template.suffix:
        text = text[: -len(template.suffix)]
    return text.rstrip(" ")


def chat_messages(
    instruction: str, system: str = "", history: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """The system message (when there is a system prompt), the earlier turns of a conversation
    (``history``: user and assistant texts) and the user's message."""
    messages = [{"role": "system", "content": system}] if system else []
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": instruction})
    return messages


@dataclass(frozen=True)
class PromptFormat:
    """How an instruction and a response become a training row and a generation prompt."""

    name: str  # "vicuna" | "chat"

    def training_row(self, instruction: str, response: str, system: str = "") -> dict[str, Any]:
        """A TRL prompt-completion row; the trainer masks the prompt and trains the completion.

        TRL appends the EOS token to a text completion; a chat completion ends with the
        template's end-of-turn token.
        """
        if self.name == "vicuna":
            prompt = generation_prompt(VICUNA, instruction, system)
            return {
                "prompt": prompt,
                "completion": VICUNA.render(instruction, response, system)[len(prompt) :],
            }
        return {
            "prompt": chat_messages(instruction, system),
            "completion": [{"role": "assistant", "content": response}],
        }

    def generation_ids(
        self,
        tokenizer: Any,
        instruction: str,
        system: str = "",
        history: Sequence[tuple[str, str]] = (),
    ) -> list[int]:
        """Token ids the model continues to answer ``instruction`` (special tokens included),
        after the earlier turns of ``history`` (user and assistant texts), if any."""
        if self.name == "vicuna":
            text = generation_prompt(VICUNA, instruction, system)
            if history:  # FastChat's Vicuna v1.1: ... USER: q1 ASSISTANT: a1</s>USER: q2 ...
                head = VICUNA.prefix_for(system)
                eos = tokenizer.eos_token or ""
                earlier = "".join(f"{u}{VICUNA.middle}{a}{eos}USER: " for u, a in history)
                text = head + earlier + text[len(head) :]
            return list(tokenizer(text).input_ids)
        out = tokenizer.apply_chat_template(
            chat_messages(instruction, system, history),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )
        return list(out["input_ids"])


def prompt_format(name: str, tokenizer: Any | None = None) -> PromptFormat:
    """Check the format against the tokenizer (``chat`` needs a chat template)."""
    if name not in PROMPT_FORMATS:
        raise ModelError(f"unknown prompt format {name!r}; choose from {', '.join(PROMPT_FORMATS)}")
    if name == "chat" and tokenizer is not None and not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "--prompt-format chat: this tokenizer has no chat template; use --prompt-format vicuna"
        )
    return PromptFormat(name)
