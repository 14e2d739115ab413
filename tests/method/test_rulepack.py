import json
import re

import pytest

from mosaic_it import MosaicConfig, Mosaicker, RulePackError, load_rule_pack
from mosaic_it.method.rulepack import default_rules_path

from ..conftest import make_records, needs


def write(tmp_path, data, name="rules.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_bundled_pack_is_valid_and_at_least_as_rich_as_the_method(pack):
    f, p, m = pack.layout, pack.permute, pack.maskout
    assert len(f["labels"]) >= 9 and len(f["label_punctuation"]) == 3
    assert len(f["tag_brackets"]) >= 27 and len(f["tag_words"]) >= 17
    assert len(f["tag_phrasings"]) >= 30 and len(f["generic_phrasings"]) >= 7
    assert all(len(v) >= 5 for v in p["rules"].values())
    # orders are plain numbers (issue 29): fewer brackets than the reference's 8, none a label's
    assert len(p["order_brackets"]) >= 3 and len(p["order_separators"]) >= 7
    assert set(m["rules"]) == {"FIX", "WORD_LONG", "WORD_SHORT", "ODD", "EVEN"}


@pytest.mark.parametrize(
    "mutate,where",
    [
        (lambda d: d["format"].pop("labels"), "format.labels: missing"),
        (lambda d: d["format"]["labels"].append("no number"), "format.labels[17]"),
        (lambda d: d["format"].__setitem__("tag_probability", 1.5), "format.tag_probability"),
        (
            lambda d: d["format"]["tag_phrasings"].append("Use {begin} only."),
            "format.tag_phrasings[34]",
        ),
        (
            lambda d: d["permute"]["rules"]["FIX"].append("Order {order} {oops}."),
            "permute.rules.FIX[9]",
        ),
        (
            lambda d: d["permute"]["rules"].__setitem__("SHUFFLE", ["x"]),
            "permute.rules.SHUFFLE: unknown key 'SHUFFLE'",
        ),
        (
            lambda d: d["maskout"]["rules"]["WORD_LONG"]["one"].append("Skip {n}."),
            "maskout.rules.WORD_LONG.one[6]",
        ),
        (lambda d: d["format"]["tag_words"].append(["A", "a"]), "format.tag_words[20]"),
        (
            lambda d: d["format"]["generic_phrasings"].append("Bad { brace."),
            "format.generic_phrasings[12]",
        ),
    ],
)
def test_malformed_pack_names_file_and_field(tmp_path, mutate, where):
    data = json.loads(default_rules_path().read_text())
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(RulePackError) as exc:
        load_rule_pack(path)
    assert str(path) in str(exc.value) and where in str(exc.value)


def test_invalid_json_pack(tmp_path):
    path = write(tmp_path, '{"name": "x",\n "version": }')
    with pytest.raises(RulePackError, match=r"line 2, column 13: invalid JSON"):
        load_rule_pack(path)


def test_a_pack_nested_too_deeply_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(RulePackError, match=r"deep\.json: nested too deeply"):
        load_rule_pack(path)


def test_extending_the_default_pack_adds_phrasings(tmp_path):
    extra = "Keep every answer between {begin} and {end}, nothing outside."
    path = write(
        tmp_path,
        {
            "extends": "default",
            "name": "mine",
            "format": {"tag_phrasings": [extra], "tag_probability": 1.0},
        },
    )
    pack = load_rule_pack(path)
    assert pack.id == "mine/3" and extra in pack.layout["tag_phrasings"]
    assert len(pack.layout["tag_phrasings"]) == len(load_rule_pack().layout["tag_phrasings"]) + 1
    samples = list(Mosaicker(MosaicConfig(rules=str(path), epochs=1)).run(make_records(60)))
    assert all(s.spec.layout_kind == "tags" or s.spec.layout_kind == "plain" for s in samples)
    assert all(s.spec.rule_pack == "mine/3" for s in samples)


def test_a_replacement_pack_is_used_verbatim(tmp_path):
    data = json.loads(default_rules_path().read_text())
    data["name"] = "tiny"
    data["format"]["labels"] = ["Q{n}"]
    path = write(tmp_path, data)
    samples = list(Mosaicker(MosaicConfig(rules=str(path), epochs=1)).run(make_records(60)))
    assert {s.spec.numbering.label for s in samples if s.spec.numbering} == {"Q{n}"}


def test_string_set_finds_what_a_plain_search_finds():
    from mosaic_it.method.pack import StringSet

    rng = __import__("random").Random(7)
    alphabet = "ab<|>_ \u00e9\u4e2d"
    strings = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(300)}
    found = StringSet(strings)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        hit = found.found_in(text)
        assert (hit is not None) == any(s in text for s in strings)
        assert hit is None or (hit in strings and hit in text)
    assert StringSet([]).found_in("anything") is None


def test_thousands_of_avoided_strings_leave_out_exactly_the_tags_that_hold_one(pack):
    from mosaic_it.method.layout import tag_pairs

    # a tokenizer's many special tokens: a few match tag pieces, most match nothing
    special = {f"<unused{i}>" for i in range(5000)} | {"[BEGIN]", "<<", "ANSWER"}
    avoiding = pack.avoiding(frozenset(special))
    kept = tag_pairs(avoiding)
    every = [
        (o, c, b, e) for o, c in pack.layout["tag_brackets"] for b, e in pack.layout["tag_words"]
    ]
    expected = [
        t
        for t in every
        if not any(
            a in t[0] + w + t[1]
            for w in (t[2], t[3], t[2].lower(), t[3].lower())
            for a in avoiding.avoid
        )
    ]
    assert kept == expected and 0 < len(kept) < len(every)


# ---------------------------------------------------------------------------- the schema


@pytest.mark.parametrize(
    "pack,message",
    [
        (
            '{\n "extends": "default",\n "name": "x",\n "fromat": {"labels": ["({n})"]}\n}',
            "line 4: fromat: unknown key 'fromat'; did you mean 'format'?",
        ),
        (
            '{\n "extends": "default",\n "name": "x",\n "margins": {\n  "wrods": 3\n }\n}',
            "line 5: margins.wrods: unknown key 'wrods'; did you mean 'words'?",
        ),
        (
            '{"extends": "default", "name": "x", "format": {"tag_brackts": [["<", ">"]]}}',
            "format.tag_brackts: unknown key 'tag_brackts'; did you mean 'tag_brackets'?",
        ),
        (
            '{"extends": "default", "name": "x", "maskout": {"rules": {"ODD": {"once": ["x"]}}}}',
            "maskout.rules.ODD.once: unknown key 'once'; did you mean 'one'?",
        ),
        (
            '{"extends": "default", "name": "x", "format": {"tag_probability": "high"}}',
            "format.tag_probability: expected a number, got str",
        ),
        ('{"extends": "default", "name": "x", "colour": 1}', "colour: unknown key 'colour'"),
    ],
)
def test_unknown_keys_are_named_with_their_line_and_the_nearest_known_key(tmp_path, pack, message):
    path = write(tmp_path, pack)
    with pytest.raises(RulePackError) as exc:
        load_rule_pack(path)
    assert str(exc.value) == f"{path}: {message}" or str(exc.value).endswith(message)
    assert "\n" not in str(exc.value)


def test_a_misspelt_pack_is_refused_by_the_command_line_in_one_line(tmp_path, capsys):
    from mosaic_it.cli.main import main

    path = write(tmp_path, {"extends": "default", "name": "x", "margins": {"wrods": 3}})
    data = write(tmp_path, [{"instruction": "Say hi.", "output": "Hi."}], "data.json")
    assert main(["mosaic", str(data), str(tmp_path / "o.json"), "--rules", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mosaic-it: error: {path}: line 1: margins.wrods: unknown key 'wrods'; "
                   "did you mean 'words'?"]  # fmt: skip


def test_the_schema_is_json_schema_and_names_every_key_and_rule_the_code_reads(pack):
    from mosaic_it.method.packschema import first_error, pack_schema
    from mosaic_it.method.strategies.base import find_strategy

    schema = pack_schema()
    assert first_error(pack.data, schema) is None
    for strategy in ("permute", "maskout"):
        rules = schema["properties"][strategy]["properties"]["rules"]["properties"]
        assert set(rules) == set(find_strategy(strategy).rules)
    newer = {"meta_like", "tag_avoid_strings"}  # taken from the bundled pack when left out
    assert set(schema["properties"]["format"]["required"]) == set(pack.layout) - newer
    assert set(schema["required"]) == set(pack.data) - {"extends"} - newer
    jsonschema = needs("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(default_rules_path().read_text()), schema)
    bad = {"extends": "default", "name": "x", "margins": {"wrods": 3}}
    assert not jsonschema.Draft202012Validator(schema).is_valid({**pack.data, **bad})


@pytest.mark.parametrize(
    "mutate,where",
    [
        (lambda d: d["format"].__setitem__("meta_separators", ["\n"]), "format.meta_separators"),
        (lambda d: d["permute"].__setitem__("order_separators", [" > "]), "order_separators"),
        (lambda d: d["permute"].__setitem__("order_brackets", [["<", ">"]]), "order_brackets"),
        (lambda d: d["meta_like"]["en"].append("(unclosed"), "meta_like.en[12]"),
    ],
)
def test_packs_that_would_make_ambiguous_prompts_are_refused(tmp_path, mutate, where):
    data = json.loads(default_rules_path().read_text())
    mutate(data)
    with pytest.raises(RulePackError, match=re.escape(where)):
        load_rule_pack(write(tmp_path, data))


def test_a_full_pack_in_the_older_form_is_read_and_its_ambiguous_entries_never_drawn(tmp_path):
    """A pack written in full before version 3 (no meta_like or tag_avoid_strings, a single
    newline among the meta separators, "<"/">" order brackets and a ">" separator, "**" tags)
    is accepted; what would read badly is never drawn."""
    data = json.loads(default_rules_path().read_text())
    del data["meta_like"], data["format"]["tag_avoid_strings"]
    data["format"]["meta_separators"] = ["\n", "\n\n"]
    data["format"]["tag_brackets"] += [["**", "**"], ["$", "$"]]
    data["permute"]["order_brackets"] += [["<", ">"], ["[[", "]]"]]
    data["permute"]["order_separators"] += [">", " > "]
    pack = load_rule_pack(write(tmp_path, data))
    assert pack.data["meta_like"] == load_rule_pack().data["meta_like"]
    records = make_records(400, seed=5)
    samples = list(Mosaicker(MosaicConfig(rules=pack.source, epochs=3)).run(records))
    for s in samples:
        assert not s.spec.tags or not any(m in s.spec.tags.begin for m in ("**", "$"))
        if s.spec.meta:
            assert (
                "\n\n" + s.spec.meta in s.instruction
                or s.spec.meta.split(" ")[0] in (s.instruction.split("\n\n")[0])
            )
        if s.spec.rule == "FIX" and s.spec.strategy == "permute":
            plain = re.sub(r"->|=>", " ", s.spec.meta)  # arrows read as "then"
            assert not re.search(r"[<>\[\]|]\s*[0-9]|[0-9]\s*[<>\[\]|]", plain), s.spec.meta
