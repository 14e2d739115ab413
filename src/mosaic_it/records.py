"""The two data types of the project: a source pair and a mosaic sample with its spec.

Readers turn every input format into :class:`Record`; writers turn :class:`Sample` into every
output format. Nothing in between knows about file formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from mosaic_it.errors import InputError

RecordId = str | int
TEXT_FIELDS = ("instruction", "input", "output", "system")  # a record's texts, in this order
SPEC_VERSIONS = (1,)  # versions of the "mosaic" spec this code reads


def join_prompt(instruction: str, input_: str) -> str:
    """The instruction as the model sees it: the instruction, then its input if any."""
    return f"{instruction}\n{input_}" if input_ else instruction


class SpecError(InputError):
    """A spec that cannot be verified against: missing fields, wrong types, unknown versions."""


@dataclass(slots=True, frozen=True)
class Record:
    """One single-turn instruction/response pair."""

    id: RecordId
    instruction: str
    output: str
    input: str = ""
    system: str = ""  # samples only group records that share their system prompt
    # join_prompt's text (kept: grouping reads it several times for every sample)
    prompt: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", join_prompt(self.instruction, self.input))

    def texts(self) -> tuple[str, str, str, str]:
        """The record's texts in the order of :data:`TEXT_FIELDS`."""
        return self.instruction, self.input, self.output, self.system


@dataclass(slots=True, frozen=True)
class Numbering:
    """A number label such as ``"(3): "``: ``label`` holds ``{n}``; a space or newline follows."""

    label: str
    punctuation: str
    newline: bool
    # labels rendered so far (every sample renders each of its labels several times)
    _rendered: dict[int, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def render(self, number: int) -> str:
        text = self._rendered.get(number)
        if text is None:
            text = self.label.format(n=number) + self.punctuation + ("\n" if self.newline else " ")
            if len(self._rendered) < 1000:
                self._rendered[number] = text
        return text


@dataclass(slots=True, frozen=True)
class Tags:
    """Begin/end tags written around every answer, e.g. ``[START]`` ... ``[END]``."""

    begin: str
    end: str


@dataclass(slots=True)
class MosaicSpec:
    """Everything that was decided for one sample: enough to re-render and to verify it.

    Positions are 1-based instruction numbers as shown in the prompt. ``answer_order`` lists
    the numbers that must be answered, in the order they must appear; numbers in ``masked``
    must not be answered at all.
    """

    sources: list[RecordId]
    epoch: int
    strategy: str  # a registered strategy: "format" | "permute" | "maskout"
    rule: str | None  # e.g. "REVERSE", "WORD_LONG"; None for format only
    layout_kind: str  # "tags" | "generic" | "plain"; written as "format" (see _KEYS)
    numbering: Numbering | None
    tags: Tags | None
    meta: str  # the whole meta-instruction text ("" when there is none), in reading order
    meta_position: str | None  # "before" | "after" | "both" (see meta_tail) | None
    answer_order: list[int]
    masked: list[int]
    rule_params: dict[str, Any] = field(default_factory=dict)
    # with meta_position "both": the end of ``meta`` that comes after the instructions (the rest,
    # less the space that joins them, comes before); written out only then
    meta_tail: str = ""
    tokens: int = 0
    template: str = "vicuna"
    rule_pack: str = ""
    version: int = 1

    @property
    def instructions(self) -> int:
        return len(self.sources)

    def meta_parts(self) -> tuple[str, str]:
        """The meta-instruction text before the instructions and the text after them."""
        if self.meta_position == "both":
            return self.meta[: len(self.meta) - len(self.meta_tail) - 1], self.meta_tail
        if self.meta_position == "after":
            return "", self.meta
        return self.meta, ""

    def to_dict(self) -> dict[str, Any]:
        # written out rather than dataclasses.asdict, whose deep copies cost more than the
        # rest of writing a sample; same keys, same order
        d = {_KEYS.get(f.name, f.name): getattr(self, f.name) for f in _SPEC_FIELDS}
        d["sources"] = list(self.sources)
        d["answer_order"] = list(self.answer_order)
        d["masked"] = list(self.masked)
        d["rule_params"] = _copy(self.rule_params)
        if not self.meta_tail:
            del d["meta_tail"]
        if self.numbering is not None:
            n = self.numbering
            d["numbering"] = {"label": n.label, "punctuation": n.punctuation, "newline": n.newline}
        if self.tags is not None:
            d["tags"] = {"begin": self.tags.begin, "end": self.tags.end}
        d["instructions"] = self.instructions
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MosaicSpec:
        """The one reader of a spec's dict (an output record's "mosaic" field): checks its
        fields, nested objects and version, and raises :class:`SpecError` naming what is wrong.
        What the values must mean (rules, numbers) is the verifier's to check."""
        if not isinstance(d, Mapping):
            raise SpecError(f"a spec is an object, got {type(d).__name__}")
        missing = [_KEYS.get(name, name) for name in _REQUIRED if _KEYS.get(name, name) not in d]
        if missing:
            raise SpecError(f"spec is missing field(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(d) - _KNOWN)
        if unknown:
            raise SpecError(f"spec has unknown field(s) {', '.join(map(repr, unknown))}")
        check_version(d.get("version", 1))
        values = {_NAMES.get(k, k): v for k, v in d.items()}
        stated = values.pop("instructions", None)
        try:
            numbering = values.pop("numbering", None)
            tags = values.pop("tags", None)
            spec = cls(
                numbering=Numbering(**numbering) if numbering is not None else None,
                tags=Tags(**tags) if tags is not None else None,
                **values,
            )
        except TypeError as exc:  # a nested object with missing or unknown fields, or not one
            raise SpecError(f"spec: {exc}") from None
        if stated is not None and isinstance(spec.sources, list) and stated != spec.instructions:
            raise SpecError(
                f"spec: 'instructions' is {stated!r} but 'sources' names {spec.instructions}"
            )
        return spec


_SPEC_FIELDS = fields(MosaicSpec)
_KEYS = {"layout_kind": "format"}  # field -> the key a spec's dict has always used for it
_NAMES = {key: name for name, key in _KEYS.items()}
# fields a spec dict must hold: those MosaicSpec has no default for
_REQUIRED = [f.name for f in _SPEC_FIELDS if f.default is MISSING and f.default_factory is MISSING]
_KNOWN = {_KEYS.get(f.name, f.name) for f in _SPEC_FIELDS} | {"instructions"}


def check_version(version: object) -> None:
    if version not in SPEC_VERSIONS:
        raise SpecError(
            f"spec version {version!r} is not known to this mosaic-it "
            f"(it reads version {', '.join(map(str, SPEC_VERSIONS))})"
        )


def _copy(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, scalars): what ``copy.deepcopy`` gives, faster."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@dataclass(slots=True)
class Sample:
    """One mosaic training sample: the rendered instruction and response, and its spec."""

    instruction: str
    output: str
    spec: MosaicSpec
    system: str = ""
    # how it was laid out (a method.layout.Layout), for counting; not written out
    layout: Any = field(default=None, compare=False, repr=False)
    # the parts of its instruction and of its response (method.compose.SampleParts: texts, and
    # the number of the record whose text goes where), for counting; not written out
    parts: Any = field(default=None, compare=False, repr=False)
    # "strategy.RULE: reason" when the rule first drawn for it did not apply; not written out
    replaced: str | None = field(default=None, compare=False, repr=False)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "instruction": self.instruction,
            "input": "",
            "output": self.output,
        }
        if self.system:
            record["system"] = self.system
        record["mosaic"] = self.spec.to_dict()
        return record
