"""Chat templates: how a sample becomes the training sequence the budget is counted on.

A single-turn template is text around the instruction and the response:
``prefix + instruction + middle + response + suffix``, where the prefix holds the system prompt
when the sample has one. That shape is what lets the engine fold exact counts from the records'
own counts (see :mod:`.counting`).

* ``vicuna``: FastChat's Vicuna v1.1 conversation, the template of the method's paper:
  ``<s>`` + system + " USER: " + instruction + " ASSISTANT: " + response + ``</s>``; a sample's
  system prompt replaces FastChat's default system message, as ``Conversation.set_system_message``
  does.
* ``chatml``: ``<|im_start|>role\\n...<|im_end|>\\n`` per message, no default system message.
* ``llama3``: Llama-3 Instruct (``<|begin_of_text|>``, header ids, ``<|eot_id|>``; contents
  trimmed, as its template does), no default system message.
* ``auto``: the tokenizer's own ``chat_template``, rendered by ``transformers`` with sentinel
  strings to find the prefix, middle and suffix (see :func:`template_from_chat_template`).
* ``none``: no template: the instruction and the response each tokenized alone, the counts
  summed (a system prompt is counted as a third text), at most the budget.
* ``reference``: the reference scripts' own count: the instruction and the response joined
  with nothing between them (a system prompt before them), tokenized as one text without BOS
  or EOS, and strictly below the budget.

Templates whose text holds special tokens (``<|im_start|>``) render them as text; the tokenizer
maps them to their ids, as ``transformers``' ``apply_chat_template`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mosaic_it.budget.tokenizer import Tokenizer
from mosaic_it.errors import OptionError

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
SYSTEM = "{system}"  # where a system prompt goes in Template.system_prefix

# What a chat template may do to a message's content before writing it (found by rendering
# whitespace around a sentinel); "keep" writes it as it is.
CONTENT_TRANSFORMS = {
    "keep": lambda s: s,
    "strip": str.strip,
    "lstrip": str.lstrip,
    "rstrip": str.rstrip,
    "strip_newlines": lambda s: s.strip("\n"),
    "lstrip_newlines": lambda s: s.lstrip("\n"),
    "rstrip_newlines": lambda s: s.rstrip("\n"),
}
KEEP = ("keep", "keep", "keep")


class TemplateError(OptionError):
    """A chat template that cannot be used for exact counting; the message says why."""


@dataclass(frozen=True)
class Template:
    """A single-turn template: text around the instruction and the response, plus BOS/EOS.

    ``prefix`` is the text before the instruction when the sample has no system prompt;
    ``system_prefix`` is the same with ``{system}`` where a system prompt goes (``None``: the
    template has no place for one). ``transforms`` names what the template does to the
    system prompt, the instruction and the response before writing them (see
    ``CONTENT_TRANSFORMS``).
    """

    name: str
    prefix: str
    middle: str
    suffix: str
    special_tokens: bool  # whether the tokenizer's BOS and EOS are part of the sequence
    joined: bool  # count the rendered text as one string (False: instruction and response apart)
    system_prefix: str | None = None
    transforms: tuple[str, str, str] = KEEP
    source: str = field(default="", compare=False)  # where an ``auto`` template came from
    # strings that mark turns in the rendered text (a record holding one would be misread)
    controls: tuple[str, ...] = ()
    strict: bool = False  # a sample's count must stay strictly below the budget

    def prefix_for(self, system: str = "") -> str:
        """The text before the instruction, with ``system`` as the system prompt."""
        if not system:
            return self.prefix
        if self.system_prefix is None:
            raise TemplateError(f"template {self.name!r} has no place for a system prompt")
        head, _, tail = self.system_prefix.partition(SYSTEM)
        return head + self._clean(0, system) + tail

    def _clean(self, slot: int, text: str) -> str:
        name = self.transforms[slot]
        return text if name == "keep" else CONTENT_TRANSFORMS[name](text)

    def keeps(self, instruction: str, response: str) -> bool:
        """Whether the template writes the instruction and the response as they are."""
        return self.transforms[1:] == ("keep", "keep") or (
            self._clean(1, instruction) == instruction and self._clean(2, response) == response
        )

    def render(self, instruction: str, response: str, system: str = "") -> str:
        """The training sequence as text (BOS/EOS of ``special_tokens`` not included)."""
        return (
            self.prefix_for(system)
            + self._clean(1, instruction)
            + self.middle
            + self._clean(2, response)
            + self.suffix
        )

    def special_count(self, tokenizer: Tokenizer) -> int:
        if not self.special_tokens:
            return 0
        return (tokenizer.bos_token is not None) + (tokenizer.eos_token is not None)

    def count_batch(
        self, tokenizer: Tokenizer, items: list[tuple[str, str]] | list[tuple[str, str, str]]
    ) -> list[int]:
        """Exact token counts of rendered training sequences.

        ``items`` are ``(instruction, response)`` or ``(instruction, response, system)``.
        """
        if not items:
            return []
        extra = self.special_count(tokenizer)
        if self.joined:
            counts = tokenizer.count_batch([self.render(*item) for item in items])
            return [c + extra for c in counts]
        texts: list[str] = []
        for item in items:
            system = item[2] if len(item) > 2 else ""
            texts += (self._clean(1, item[0]), self._clean(2, item[1]), system)
        counts = tokenizer.count_batch(texts)
        return [sum(counts[3 * j : 3 * j + 3]) + extra for j in range(len(items))]

    def count(self, tokenizer: Tokenizer, instruction: str, response: str, system: str = "") -> int:
        return self.count_batch(tokenizer, [(instruction, response, system)])[0]


CHATML = Template(
    "chatml",
    "<|im_start|>user\n",
    "<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|>\n",
    False,
    True,
    system_prefix="<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n",
    controls=("<|im_start|>", "<|im_end|>"),
)
LLAMA3 = Template(
    "llama3",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|eot_id|>",
    False,
    True,
    system_prefix="<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}"
    "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
    transforms=("strip", "strip", "strip"),
    controls=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
)

TEMPLATES: dict[str, Template] = {
    "vicuna": Template(
        "vicuna",
        VICUNA_SYSTEM + " USER: ",
        " ASSISTANT: ",
        "",
        True,
        True,
        system_prefix=SYSTEM + " USER: ",
        controls=("USER:", "ASSISTANT:"),
    ),
    "chatml": CHATML,
    "llama3": LLAMA3,
    "none": Template("none", "", "", "", False, False, system_prefix=SYSTEM),
    "reference": Template("reference", "", "", "", False, True, system_prefix=SYSTEM, strict=True),
}
TEMPLATE_NAMES = (*TEMPLATES, "auto")


def check_template(name: str, tokenizer: str | None = None) -> None:
    """Validate a template name without loading anything (``auto`` needs a tokenizer)."""
    if name not in TEMPLATE_NAMES:
        raise OptionError(f"unknown template {name!r}; choose from {', '.join(TEMPLATE_NAMES)}")
    if name == "auto" and not tokenizer:
        raise OptionError(
            "template 'auto' renders with the tokenizer's own chat_template: pass --tokenizer "
            "DIR (a directory with tokenizer_config.json) or a hub name"
        )


def get_template(name: str, tokenizer: str | None = None) -> Template:
    """A template by name; ``auto`` derives one from the chat template of ``tokenizer``."""
    check_template(name, tokenizer)
    if name == "auto":
        assert tokenizer is not None
        return template_from_chat_template(str(tokenizer))
    return TEMPLATES[name]


# ---------------------------------------------------------------------- auto

SENTINELS = ("MosaicSystemSentinel", "MosaicUserSentinel", "MosaicAssistantSentinel")  # mixed case
PADDING = "\n \n"  # whitespace around a sentinel, to see what the template strips


def _messages(system: str | None, user: str, assistant: str) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system is not None else []
    return out + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


@functools.lru_cache(maxsize=8)
def template_from_chat_template(spec: str) -> Template:
    """Derive a Template from a tokenizer's ``chat_template`` (needs ``transformers``).

    ``spec`` is a tokenizer directory (or a file inside one) or a hub name. The template is
    rendered with sentinel strings: the text before, between and after them must not depend
    on the contents, and whitespace around a content must either be kept or removed in one of
    the ways of ``CONTENT_TRANSFORMS``; otherwise the template cannot be counted exactly and a
    :class:`TemplateError` says why.
    """
    render = _renderer(spec)
    s, u, a = SENTINELS
    prefix, middle, suffix = _split(render(_messages(None, u, a)), u, a, spec)

    # the split must hold for other contents too
    u2, a2 = "Some other question?", "A longer answer, with\ntwo lines."
    if render(_messages(None, u2, a2)) != prefix + u2 + middle + a2 + suffix:
        raise TemplateError(
            f"{spec}: its chat_template renders the text around a message differently "
            "depending on the message, so it is not prefix + instruction + middle + response "
            "+ suffix; choose a built-in --template"
        )
    system_prefix = _system_prefix(render, (middle, suffix), spec)

    def expected(system: str | None, user: str, assistant: str) -> str:
        head = prefix if system is None else str(system_prefix).replace(SYSTEM, system)
        return head + user + middle + assistant + suffix

    return Template(
        "auto",
        prefix,
        middle,
        suffix,
        False,
        True,
        system_prefix=system_prefix,
        transforms=_content_transforms(render, expected, system_prefix is not None, spec),
        source=spec,
    )


def _renderer(spec: str) -> Callable[[list[dict[str, str]]], str]:
    """The tokenizer's ``apply_chat_template`` as a function of messages to text."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise TemplateError(
            "template 'auto' needs transformers: pip install 'mosaic-it[hf]'"
        ) from None
    path = Path(spec)
    location = str(path.parent if path.is_file() else path)
    try:
        tok = AutoTokenizer.from_pretrained(location)
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises, name the tokenizer
        raise TemplateError(
            f"{spec}: cannot load the tokenizer for template 'auto': {exc}"
        ) from None
    if not getattr(tok, "chat_template", None):
        raise TemplateError(
            f"{spec}: the tokenizer has no chat_template (tokenizer_config.json or "
            "chat_template.jinja); choose --template vicuna, chatml, llama3 or none"
        )

    def render(messages: list[dict[str, str]]) -> str:
        try:
            text = tok.apply_chat_template(messages, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - a template may raise anything
            raise TemplateError(f"{spec}: its chat_template failed to render: {exc}") from None
        if not isinstance(text, str):
            raise TemplateError(f"{spec}: its chat_template did not render to text")
        return text

    return render


def _system_prefix(
    render: Callable[[list[dict[str, str]]], str], after: tuple[str, str], spec: str
) -> str | None:
    """Where a system prompt goes: the text before the instruction with SYSTEM standing for
    the prompt (None: the template rejects or ignores system messages). ``after``: the
    middle and suffix rendered without a system prompt, which must stay the same."""
    s, u, a = SENTINELS
    try:
        with_system = render(_messages(s, u, a))
    except TemplateError:
        return None
    if with_system.count(s) != 1:
        return None
    head, rest = with_system.split(s)
    sys_tail, middle, suffix = _split(rest, u, a, spec)
    if (middle, suffix) != after or SYSTEM in head + sys_tail:
        raise TemplateError(
            f"{spec}: with a system prompt its chat_template renders the answer "
            "differently; choose a built-in --template"
        )
    return head + SYSTEM + sys_tail


def _content_transforms(
    render: Callable[[list[dict[str, str]]], str],
    expected: Callable[[str | None, str, str], str],
    has_system: bool,
    spec: str,
) -> tuple[str, str, str]:
    """What the template does to the white space around each message (system, user,
    assistant): the name of the ``CONTENT_TRANSFORMS`` entry that reproduces it."""
    s, u, a = SENTINELS
    transforms = []
    for slot, role in enumerate(("system", "user", "assistant")):
        if slot == 0 and not has_system:
            transforms.append("keep")
            continue
        padded = PADDING + SENTINELS[slot] + PADDING
        contents: list[str | None] = [s if slot == 0 else None, u, a]
        contents[slot] = padded
        text = render(_messages(*contents))  # type: ignore[arg-type]  # only contents[0] is None
        for name, fn in CONTENT_TRANSFORMS.items():
            parts = list(contents)
            parts[slot] = fn(padded)
            if expected(*parts) == text:  # type: ignore[arg-type]  # only parts[0] is None
                transforms.append(name)
                break
        else:
            raise TemplateError(
                f"{spec}: its chat_template changes the {role} message's text in a way "
                "mosaic-it cannot reproduce; choose a built-in --template"
            )
    return transforms[0], transforms[1], transforms[2]  # system, user, assistant


def _split(text: str, user: str, assistant: str, spec: str) -> tuple[str, str, str]:
    if (
        text.count(user) != 1
        or text.count(assistant) != 1
        or text.index(user) > text.index(assistant)
    ):
        raise TemplateError(
            f"{spec}: its chat_template does not write a user message then an assistant "
            "message as given; choose a built-in --template"
        )
    head, rest = text.split(user)
    middle, tail = rest.split(assistant)
    return head, middle, tail
