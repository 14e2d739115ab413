"""Dataset formats at the edge: raw objects of each format to records, samples to each format.

Five formats, as the training frameworks write them:

=====================  ==================================================================
``alpaca``             ``instruction``, optional ``input``, ``output``, ``system``, ``history``
                       (``[[prompt, response], ...]``, earlier turns)
``sharegpt``           ``conversations``: ``[{"from": "human"|"gpt"|"system", "value": ...}]``
                       (``user``/``assistant`` accepted too); optional ``system`` field
``messages``           ``messages``: ``[{"role": "system"|"user"|"assistant", "content": ...}]``
``messages-parts``     LLaMA-Factory's newer messages files (``v1_sft_demo.jsonl``): contents are
                       lists of parts ``{"type": "text", "value": ...}``, and each message may
                       carry a ``loss_weight``
``prompt-completion``  TRL: ``prompt`` and ``completion``, both strings, or both lists of
                       messages (conversational)
=====================  ==================================================================

A record with exactly one user turn and one assistant turn (after an optional system prompt)
becomes a :class:`~mosaic_it.records.Record`; a longer, valid conversation becomes a
:class:`Conversation`, passed through unchanged or left out, never mosaicked. Contents may be
strings or lists of text parts (``{"type": "text", "text": ...}``, or ``"value"`` for the text as
LLaMA-Factory writes it, joined with no separator, as chat templates render them). Every error
is a ``ValueError`` naming the field.

Writers give each format's dicts; every output row has a ``mosaic`` key: the sample's spec, or
``None`` for rows that were not mosaicked (``--keep-originals``, ``--keep-multiturn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mosaic_it.errors import OptionError
from mosaic_it.io.errors import type_name
from mosaic_it.records import Record, RecordId, Sample

FORMATS = ("alpaca", "sharegpt", "messages", "prompt-completion", "messages-parts")

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
ROLE_NAMES = {
    "human": USER,
    "user": USER,
    "gpt": ASSISTANT,
    "assistant": ASSISTANT,
    "system": SYSTEM,
}
SHAREGPT_ROLES = {USER: "human", ASSISTANT: "gpt", SYSTEM: "system"}


class LeftOut(ValueError):
    """A valid record that is not mosaicked (a multi-turn record); counted, never an error."""


@dataclass(slots=True)
class Conversation:
    """A valid conversation that is not a single pair: alternating user/assistant turns."""

    id: RecordId
    turns: list[tuple[str, str]]  # (role, content): user, assistant, user, ..., assistant
    system: str = ""


Parsed = Record | Conversation


# ---------------------------------------------------------------------- detection


def detect_format(obj: Any) -> str | None:
    """The format a raw record is in, from its fields (``None``: none of them)."""
    if not isinstance(obj, dict):
        return None
    if "messages" in obj:
        return "messages-parts" if _value_parts(obj["messages"]) else "messages"
    if "conversations" in obj:
        return "sharegpt"
    if "instruction" in obj:
        return "alpaca"
    if "prompt" in obj and "completion" in obj:
        return "prompt-completion"
    return None


REQUIRED_FIELDS = {
    "alpaca": ("instruction", "output"),
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "messages-parts": ("messages",),
    "prompt-completion": ("prompt", "completion"),
}


def _value_parts(messages: Any) -> bool:
    """Whether a list of messages writes its first content as parts with ``"value"`` texts."""
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return False
    content = messages[0].get("content")
    return (
        isinstance(content, list)
        and bool(content)
        and isinstance(content[0], dict)
        and "value" in content[0]
    )


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise OptionError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return name


# ---------------------------------------------------------------------- readers


def _text(value: Any, where: str, allow_empty: bool = False) -> str:
    """A content: a string, or a list of text parts joined with no separator."""
    if isinstance(value, list):
        pieces = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                pieces.append(part)
                continue
            if not isinstance(part, dict):
                raise ValueError(
                    f"field '{where}[{j}]': expected a text part, got {type_name(part)}"
                )
            kind = part.get("type", "text")
            if kind != "text":
                raise ValueError(
                    f"field '{where}[{j}].type': {kind!r} parts are not supported (only text)"
                )
            key = "value" if "value" in part and "text" not in part else "text"
            if not isinstance(part.get(key), str):
                raise ValueError(
                    f"field '{where}[{j}].{key}': expected a string, got {type_name(part.get(key))}"
                )
            pieces.append(part[key])
        value = "".join(pieces)
    elif not isinstance(value, str):
        raise ValueError(f"field '{where}': expected a string, got {type_name(value)}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field '{where}': empty")
    return value


def _optional_text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field '{name}': expected a string, got {type_name(value)}")
    return value


def _record_id(obj: dict[str, Any], index: int) -> RecordId:
    rid = obj.get("id")
    if rid is None:
        return index
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"field 'id': expected a string or an integer, got {type_name(rid)}")
    return rid


def _object(obj: Any, fields: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object with {fields}, got {type_name(obj)}")
    return obj


def parse_alpaca(obj: Any, index: int) -> Parsed:
    obj = _object(obj, "'instruction' and 'output'")
    for name in ("instruction", "output"):
        if name not in obj:
            raise ValueError(f"field '{name}': missing")
    instruction = _text(obj["instruction"], "instruction")
    output = _text(obj["output"], "output")
    text_input = _optional_text(obj, "input")
    system = _optional_text(obj, "system")
    rid = _record_id(obj, index)
    history = obj.get("history")
    if not history:
        return Record(
            id=rid, instruction=instruction, output=output, input=text_input, system=system
        )
    if not isinstance(history, list):
        raise ValueError(
            f"field 'history': expected a list of [prompt, response], got {type_name(history)}"
        )
    turns: list[tuple[str, str]] = []
    for j, pair in enumerate(history):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"field 'history[{j}]': expected [prompt, response]")
        turns += [
            (USER, _text(pair[0], f"history[{j}][0]")),
            (ASSISTANT, _text(pair[1], f"history[{j}][1]")),
        ]
    prompt = f"{instruction}\n{text_input}" if text_input else instruction
    return Conversation(rid, turns + [(USER, prompt), (ASSISTANT, output)], system)


def _turns(
    value: Any, name: str, role_key: str, content_key: str, last: str = ASSISTANT
) -> tuple[str, list[tuple[str, str]]]:
    """(system, turns) of a list of messages; checks roles, contents and alternation."""
    if not isinstance(value, list):
        raise ValueError(f"field '{name}': expected a list of messages, got {type_name(value)}")
    if not value:
        raise ValueError(f"field '{name}': empty")
    system = ""
    turns: list[tuple[str, str]] = []
    for j, message in enumerate(value):
        where = f"{name}[{j}]"
        if not isinstance(message, dict):
            raise ValueError(f"field '{where}': expected an object, got {type_name(message)}")
        if role_key not in message:
            raise ValueError(f"field '{where}.{role_key}': missing")
        raw_role = message[role_key]
        role = ROLE_NAMES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise ValueError(
                f"field '{where}.{role_key}': unknown role {raw_role!r}; expected one of "
                + ", ".join(ROLE_NAMES)
            )
        if content_key not in message:
            raise ValueError(f"field '{where}.{content_key}': missing")
        if role == SYSTEM:
            if j != 0:
                raise ValueError(f"field '{where}.{role_key}': a system message must come first")
            system = _text(message[content_key], f"{where}.{content_key}", allow_empty=True)
            continue
        expected = USER if len(turns) % 2 == 0 else ASSISTANT
        if role != expected:
            raise ValueError(
                f"field '{where}.{role_key}': expected a {expected} turn (turns alternate, "
                f"user first), got {raw_role!r}"
            )
        turns.append((role, _text(message[content_key], f"{where}.{content_key}")))
    if not turns:
        raise ValueError(f"field '{name}': no user or assistant turn")
    if turns[-1][0] != last:
        raise ValueError(f"field '{name}': the last turn must be the {last}'s")
    return system, turns


def _from_turns(rid: RecordId, system: str, turns: list[tuple[str, str]]) -> Parsed:
    if len(turns) == 2:
        return Record(id=rid, instruction=turns[0][1], output=turns[1][1], system=system)
    return Conversation(rid, turns, system)


def parse_sharegpt(obj: Any, index: int) -> Parsed:
    obj = _object(obj, "'conversations'")
    if "conversations" not in obj:
        raise ValueError("field 'conversations': missing")
    system, turns = _turns(obj["conversations"], "conversations", "from", "value")
    field_system = _optional_text(obj, "system")
    if system and field_system:
        raise ValueError("field 'system': given both as a field and as a system turn")
    return _from_turns(_record_id(obj, index), system or field_system, turns)


def parse_messages(obj: Any, index: int) -> Parsed:
    obj = _object(obj, "'messages'")
    if "messages" not in obj:
        raise ValueError("field 'messages': missing")
    system, turns = _turns(obj["messages"], "messages", "role", "content")
    return _from_turns(_record_id(obj, index), system, turns)


def parse_prompt_completion(obj: Any, index: int) -> Parsed:
    obj = _object(obj, "'prompt' and 'completion'")
    for name in ("prompt", "completion"):
        if name not in obj:
            raise ValueError(f"field '{name}': missing")
    prompt, completion = obj["prompt"], obj["completion"]
    rid = _record_id(obj, index)
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict) and "role" in prompt[0]:
        if not isinstance(completion, list):
            raise ValueError(
                "field 'completion': expected a list of messages like 'prompt', got "
                f"{type_name(completion)}"
            )
        system, turns = _turns(prompt, "prompt", "role", "content", last=USER)
        if len(completion) != 1:
            raise ValueError(
                f"field 'completion': expected one assistant message, got {len(completion)}"
            )
        message = completion[0]
        if not isinstance(message, dict):
            raise ValueError(f"field 'completion[0]': expected an object, got {type_name(message)}")
        role = message.get("role")
        if not isinstance(role, str) or ROLE_NAMES.get(role) != ASSISTANT:
            raise ValueError(
                f"field 'completion[0].role': expected 'assistant', got {message.get('role')!r}"
            )
        if "content" not in message:
            raise ValueError("field 'completion[0].content': missing")
        answer = _text(message["content"], "completion[0].content")
        return _from_turns(rid, system, [*turns, (ASSISTANT, answer)])
    return Record(
        id=rid, instruction=_text(prompt, "prompt"), output=_text(completion, "completion")
    )


PARSERS = {
    "alpaca": parse_alpaca,
    "sharegpt": parse_sharegpt,
    "messages": parse_messages,
    "messages-parts": parse_messages,
    "prompt-completion": parse_prompt_completion,
}


def parse(obj: Any, fmt: str, index: int) -> Parsed:
    """A raw object of format ``fmt`` as a Record (a single pair) or a Conversation."""
    return PARSERS[fmt](obj, index)


# ---------------------------------------------------------------------- writers


def _pair_turns(record: Record) -> list[tuple[str, str]]:
    return [(USER, record.prompt), (ASSISTANT, record.output)]


def _role_messages(system: str, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    head = [{"role": SYSTEM, "content": system}] if system else []
    return head + [{"role": role, "content": text} for role, text in turns]


def _format_turns(
    fmt: str, system: str, turns: list[tuple[str, str]], mosaic: dict[str, Any] | None
) -> dict[str, Any]:
    if fmt == "sharegpt":
        row: dict[str, Any] = {
            "conversations": [{"from": SHAREGPT_ROLES[r], "value": t} for r, t in turns]
        }
        if system:
            row["system"] = system
    elif fmt == "messages":
        row = {"messages": _role_messages(system, turns)}
    elif fmt == "messages-parts":
        # as LLaMA-Factory writes them: the assistant's turns are trained on, the rest not
        row = {
            "messages": [
                {
                    "role": m["role"],
                    "content": [{"type": "text", "value": m["content"]}],
                    "loss_weight": 1.0 if m["role"] == ASSISTANT else 0.0,
                }
                for m in _role_messages(system, turns)
            ]
        }
    elif fmt == "prompt-completion":
        row = {
            "prompt": _role_messages(system, turns[:-1]),
            "completion": _role_messages("", turns[-1:]),
        }
    elif fmt == "alpaca":
        row = {"instruction": turns[-2][1], "input": "", "output": turns[-1][1]}
        if system:
            row["system"] = system
        if len(turns) > 2:
            row["history"] = [[turns[j][1], turns[j + 1][1]] for j in range(0, len(turns) - 2, 2)]
    else:
        raise OptionError(f"unknown format {fmt!r}")
    row["mosaic"] = mosaic
    return row


def sample_to_row(sample: Sample, fmt: str) -> dict[str, Any]:
    """A mosaic sample in format ``fmt``, with its spec under ``mosaic``."""
    if fmt == "alpaca":
        return sample.to_record()
    turns = [(USER, sample.instruction), (ASSISTANT, sample.output)]
    return _format_turns(fmt, sample.system, turns, sample.spec.to_dict())


def record_to_row(record: Record, fmt: str) -> dict[str, Any]:
    """An original pair in format ``fmt``, marked ``"mosaic": None``."""
    if fmt == "alpaca":
        row: dict[str, Any] = {
            "instruction": record.instruction,
            "input": record.input,
            "output": record.output,
        }
        if record.system:
            row["system"] = record.system
        row["mosaic"] = None
        return row
    return _format_turns(fmt, record.system, _pair_turns(record), None)


def conversation_to_row(conversation: Conversation, fmt: str) -> dict[str, Any]:
    """A passed-through conversation in format ``fmt``, marked ``"mosaic": None``."""
    return _format_turns(fmt, conversation.system, conversation.turns, None)
