"""Chat templates: how a sample becomes the training sequence the budget is counted on.

``vicuna`` is FastChat's Vicuna v1.1 conversation, the template of the method's paper:
``<s>`` + system + " USER: " + instruction + " ASSISTANT: " + response + ``</s>``.
``none`` counts the instruction and the response alone, as the reference scripts did.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tokenizer import Tokenizer

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


@dataclass(frozen=True)
class Template:
    """A single-turn template: text around the instruction and the response, plus BOS/EOS."""

    name: str
    prefix: str
    middle: str
    suffix: str
    special_tokens: bool  # whether the tokenizer's BOS and EOS are part of the sequence
    joined: bool  # count the rendered text as one string (False: instruction and response apart)

    def render(self, instruction: str, response: str) -> str:
        return self.prefix + instruction + self.middle + response + self.suffix

    def special_count(self, tokenizer: Tokenizer) -> int:
        if not self.special_tokens:
            return 0
        return (tokenizer.bos_token is not None) + (tokenizer.eos_token is not None)

    def count_batch(self, tokenizer: Tokenizer, pairs: list[tuple[str, str]]) -> list[int]:
        """Exact token counts of rendered training sequences."""
        if not pairs:
            return []
        extra = self.special_count(tokenizer)
        if self.joined:
            counts = tokenizer.count_batch([self.render(i, r) for i, r in pairs])
            return [c + extra for c in counts]
        counts = tokenizer.count_batch([t for pair in pairs for t in pair])
        return [counts[2 * j] + counts[2 * j + 1] + extra for j in range(len(pairs))]

    def count(self, tokenizer: Tokenizer, instruction: str, response: str) -> int:
        return self.count_batch(tokenizer, [(instruction, response)])[0]


TEMPLATES: dict[str, Template] = {
    "vicuna": Template("vicuna", VICUNA_SYSTEM + " USER: ", " ASSISTANT: ", "", True, True),
    "none": Template("none", "", "", "", False, False),
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose from {', '.join(TEMPLATES)}") from None
