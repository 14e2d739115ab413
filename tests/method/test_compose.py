"""Composing a sample: the parts it is laid out in are the ones its text is made of."""

from mosaic_it.method.compose import render_parts, sample_parts
from mosaic_it.method.layout import render_instruction, render_response

from ..conftest import make_records


def test_a_samples_parts_render_its_text_and_follow_its_layout():
    from mosaic_it import MosaicConfig, Mosaicker

    records = make_records(120, seed=4)
    by_id = {r.id: r for r in records}
    m = Mosaicker(MosaicConfig(epochs=2, max_tokens=900, seed=9))
    samples = list(m.run(records))
    kinds = set()
    for s in samples:
        group = [by_id[i] for i in s.spec.sources]
        prompts, outputs = [r.prompt for r in group], [r.output for r in group]
        parts = s.parts
        assert render_parts(parts.instruction, parts.instruction_at, prompts) == s.instruction
        assert render_parts(parts.response, parts.response_at, outputs) == s.output
        assert parts.instruction_at == [
            j for j, p in enumerate(parts.instruction) if type(p) is int
        ]
        assert parts.response_at == [j for j, p in enumerate(parts.response) if type(p) is int]
        # every record's prompt once, in order; the outputs answered, in the answer order
        assert [p for p in parts.instruction if type(p) is int] == list(range(len(group)))
        assert [p + 1 for p in parts.response if type(p) is int] == s.spec.answer_order
        # the same parts as the layout and the spec give (what counting falls back to)
        head, tail = s.spec.meta_parts()
        again = sample_parts(s.layout, len(group), head, tail, s.spec.answer_order)
        assert again == parts
        assert render_instruction(s.layout, prompts, head, tail) == s.instruction
        assert render_response(s.layout, outputs, s.spec.answer_order) == s.output
        kinds.add((s.spec.layout_kind, s.spec.numbering is None, s.spec.meta_position))
    assert len(kinds) >= 8  # tags, generic and plain layouts, numbered or not, meta placed
