"""The spec a response is verified against: read by the one spec parser
(:meth:`MosaicSpec.from_dict`), then checked for what its values must mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from mosaic_it.method.layout import LAYOUT_KINDS, TAGS
from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.method.strategies.base import find_strategy, registered
from mosaic_it.records import MosaicSpec, SpecError, check_version


def load_spec(spec: MosaicSpec | Mapping[str, Any], pack: RulePack | None = None) -> MosaicSpec:
    """A validated spec from a MosaicSpec or its dict (an output record's "mosaic" field).

    Raises :class:`SpecError` naming what is missing or wrong.
    """
    if not isinstance(spec, MosaicSpec):
        spec = MosaicSpec.from_dict(spec)
    _validate(spec, pack)
    return spec


def _bad(name: str, why: str) -> NoReturn:
    raise SpecError(f"spec field {name!r}: {why}")


def _validate(spec: MosaicSpec, pack: RulePack | None) -> None:
    check_version(spec.version)
    _check_rule_pack(spec.rule_pack, pack or load_rule_pack())
    if not isinstance(spec.sources, list) or not spec.sources:
        _bad("sources", "expected a non-empty list")
    strategy = find_strategy(spec.strategy)
    if strategy is None:
        known = ", ".join(registered())
        _bad("strategy", f"unknown strategy {spec.strategy!r}; known: {known}")
    elif spec.rule not in strategy.rules:
        _bad("rule", f"{spec.rule!r} is not a {spec.strategy} rule")
    _check_layout(spec)
    _check_answers(spec, len(spec.sources))
    if not isinstance(spec.rule_params, dict):
        _bad("rule_params", "expected an object")
    if spec.meta_position not in (None, "before", "after", "both"):
        _bad("meta_position", f"expected before, after, both or null, got {spec.meta_position!r}")
    if spec.meta_position == "both" and not (
        isinstance(spec.meta_tail, str)
        and spec.meta_tail
        and spec.meta.endswith(" " + spec.meta_tail)
    ):
        _bad("meta_tail", "with meta_position \"both\" it must be the end of 'meta' after a space")


def _check_layout(spec: MosaicSpec) -> None:
    """The layout kind (the spec's "format"), its labels and its tags."""
    kind = spec.layout_kind
    if kind not in LAYOUT_KINDS:
        _bad("format", f"unknown format {kind!r}; known: {', '.join(LAYOUT_KINDS)}")
    if (kind == TAGS) != (spec.tags is not None):
        _bad("tags", f"format {kind!r} with tags {spec.tags!r}")
    n = spec.numbering
    if n is not None and not (
        isinstance(n.label, str)
        and n.label.count("{n}") == 1
        and isinstance(n.punctuation, str)
        and isinstance(n.newline, bool)
    ):
        _bad(
            "numbering", "expected label (a text with one {n}), punctuation (text), newline (bool)"
        )
    t = spec.tags
    if t is not None and not (
        isinstance(t.begin, str)
        and isinstance(t.end, str)
        and t.begin.strip()
        and t.end.strip()
        and t.begin != t.end
    ):
        _bad("tags", "expected two different non-empty texts, begin and end")


def _check_answers(spec: MosaicSpec, k: int) -> None:
    """The answer order and the skipped instructions: together, every instruction once."""
    for name in ("answer_order", "masked"):
        value = getattr(spec, name)
        if not isinstance(value, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= k for x in value
        ):
            _bad(name, f"expected a list of instruction numbers 1..{k}")
        if len(set(value)) != len(value):
            _bad(name, "names an instruction twice")
    if not spec.answer_order:
        _bad("answer_order", "no instruction is to be answered")
    if sorted(spec.answer_order + spec.masked) != list(range(1, k + 1)):
        _bad("answer_order", f"with 'masked' it must name every instruction 1..{k} once")


def _check_rule_pack(rule_pack: str, pack: RulePack) -> None:
    """A spec made with a newer version of the bundled pack may use rules this code doesn't know.

    Other packs are fine: a spec carries every label, tag and number it needs.
    """
    if not isinstance(rule_pack, str):
        raise SpecError(f"spec field 'rule_pack': expected a text, got {type(rule_pack).__name__}")
    name, _, version = rule_pack.rpartition("/")
    newer = not version.isdigit() or int(version) > int(pack.version)
    if name == pack.name and newer:
        raise SpecError(
            f"spec made with rule pack {rule_pack}, a version this mosaic-it does not "
            f"know (it has {pack.id})"
        )
