"""The JSON Schemas shipped with the package describe what the code writes."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from mosaic_it.engine.mosaicker import mosaic
from mosaic_it.io.readers import example_path, read_records

jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema (the test extra)")


def _schema(name: str) -> dict:
    path = resources.files("mosaic_it").joinpath(f"data/schemas/{name}.schema.json")
    return json.loads(path.read_text())


def test_the_spec_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(_schema("mosaic_spec"))


@pytest.mark.parametrize(
    "options",
    [
        {"seed": 1},
        {"seed": 2, "wrap_mode": "max_length", "max_tokens": 4096},
        {"seed": 3, "strategies": ("format",)},
        {"seed": 4, "wrap_mode": "fix_max", "max_instructions": 3},
    ],
)
def test_every_written_spec_follows_the_schema(options: dict) -> None:
    validator = jsonschema.Draft202012Validator(_schema("mosaic_spec"))
    seen_rules: set[str | None] = set()
    for sample in mosaic(read_records(example_path()), epochs=2, **options):
        spec = sample.spec.to_dict()
        errors = sorted(validator.iter_errors(spec), key=str)
        assert not errors, f"{spec}: {errors[0].message}"
        seen_rules.add(spec["rule"])
    assert seen_rules  # the runs made samples


def test_the_schema_refuses_what_the_reader_refuses() -> None:
    validator = jsonschema.Draft202012Validator(_schema("mosaic_spec"))
    spec = next(iter(mosaic(read_records(example_path()), epochs=1, seed=1))).spec.to_dict()
    assert not list(validator.iter_errors(spec))
    for broken in (
        {**spec, "stratgy": "format"},  # an unknown key
        {**spec, "strategy": "shuffle"},
        {**spec, "version": 2},
        {k: v for k, v in spec.items() if k != "sources"},
    ):
        assert list(validator.iter_errors(broken)), broken
