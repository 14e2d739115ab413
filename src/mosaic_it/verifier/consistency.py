"""Whether a spec is true of its instructions: the "spec_consistent" check.

The spec's strategy (found in the registry, :mod:`mosaic_it.method.strategies.base`) re-applies
its rule to the instruction texts, given or read back from the rendered prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mosaic_it.method.pack import RulePack
from mosaic_it.method.rulepack import load_rule_pack
from mosaic_it.method.strategies.base import Check, Item, find_strategy
from mosaic_it.records import MosaicSpec, Numbering

SPEC_CONSISTENT = "spec_consistent"
PROMPT_READINGS = 256  # readings of a prompt tried before spec consistency is called unverifiable


def spec_consistency(
    spec: MosaicSpec,
    *,
    instructions: Sequence[str] | None = None,
    prompt: str | None = None,
    pack: RulePack | None = None,
) -> Check:
    """The "spec_consistent" check: the spec's rule, re-applied to the instructions, gives its
    answer order and skips. With ``prompt`` the instructions are read back from the rendered
    instruction; it passes when one reading of it is consistent."""
    if instructions is not None:
        problem = _consistency_problem(spec, list(instructions))
        return Check(SPEC_CONSISTENT, problem is None, problem or "")
    assert prompt is not None
    return read_prompt(spec, prompt, pack)[0]


def read_prompt(
    spec: MosaicSpec, prompt: str, pack: RulePack | None = None
) -> tuple[Check, list[str] | None]:
    """The instruction texts of a rendered prompt: the first reading consistent with the spec
    (None if there is none), with the "spec_consistent" check."""
    name = SPEC_CONSISTENT
    cfg = (pack or load_rule_pack()).layout
    readings = instruction_splits(
        spec.numbering,
        spec.instructions,
        prompt,
        *spec.meta_parts(),
        cfg["instruction_separators"],
        cfg["meta_separators"],
    )
    first_problem = None
    for tried, texts in enumerate(readings, start=1):
        problem = _consistency_problem(spec, texts)
        if problem is None:
            return Check(name, True), texts
        first_problem = first_problem or problem
        if tried >= PROMPT_READINGS:
            return Check(
                name,
                None,
                f"not verifiable: the prompt reads in more than "
                f"{PROMPT_READINGS} ways; pass the instructions instead",
            ), None
    if first_problem is None:
        return Check(
            name,
            False,
            f"the prompt does not read as {spec.instructions} instructions in the spec's layout",
        ), None
    return Check(name, False, first_problem), None


def _consistency_problem(spec: MosaicSpec, texts: list[str]) -> str | None:
    k = spec.instructions
    if len(texts) != k:
        return f"{len(texts)} instructions given, the spec has {k}"
    strategy = find_strategy(spec.strategy)
    if strategy is None:
        return f"unknown strategy {spec.strategy!r}"
    return strategy.check(spec, [Item(i, text) for i, text in enumerate(texts, start=1)])


# ---------------------------------------------------------------------------- reading a prompt


LEGACY_META_SEPARATOR = "\n"


def instruction_splits(
    numbering: Numbering | None,
    count: int,
    prompt: str,
    head: str,
    tail: str,
    instruction_separators: list[str],
    meta_separators: list[str],
) -> Iterator[list[str]]:
    """Every way ``prompt`` reads as the output of
    :func:`~mosaic_it.method.layout.render_instruction` for ``count`` instructions, with
    meta-instruction text ``head`` before them and ``tail`` after them: the instruction texts,
    earliest split first. An instruction may hold lines that look like the
    next label, so there can be more than one reading."""
    blocks = [prompt]
    if head or tail:
        blocks = []
        # the default pack wrote one newline there before its version 3: such samples still read
        for sep in sorted({*meta_separators, LEGACY_META_SEPARATOR}, key=len, reverse=True):
            before = head + sep if head else ""
            after = sep + tail if tail else ""
            if (
                prompt.startswith(before)
                and prompt.endswith(after)
                and (len(prompt) >= len(before) + len(after))
            ):
                blocks.append(prompt[len(before) : len(prompt) - len(after)])
    if numbering is None:
        # an unnumbered sample always separates its instructions by the longest separator
        separators = [max(instruction_separators, key=len)]
    else:
        separators = sorted(set(instruction_separators), key=len, reverse=True)
    labels = [numbering.render(n) if numbering else "" for n in range(1, count + 1)]
    for block in blocks:
        for sep in separators:
            if block.startswith(labels[0]):
                yield from _splits(block, len(labels[0]), labels, 1, sep, [])


def _splits(
    block: str, start: int, labels: list[str], i: int, sep: str, done: list[str]
) -> Iterator[list[str]]:
    if i == len(labels):
        if block[start:].strip():
            yield done + [block[start:]]
        return
    seam = sep + labels[i]
    at = block.find(seam, start + 1)
    while at != -1:
        if block[start:at].strip():
            yield from _splits(block, at + len(seam), labels, i + 1, sep, done + [block[start:at]])
        at = block.find(seam, at + 1)
