"""A SentencePiece BPE model as a ``tokenizers`` pipeline, without the ``sentencepiece`` package.

:func:`parse_sentencepiece_model` reads a ``.model`` file (a serialized ``ModelProto``, parsed
by :mod:`.protobuf`) into a :class:`SentencePieceModel`; :func:`sentencepiece_bpe_to_tokenizers`
builds the ``tokenizers`` BPE pipeline that reproduces ``SentencePieceProcessor.encode``
id-for-id (tests check this on hand-picked strings, random unicode and real data). A GGUF
file's SentencePiece tokenizer is built the same way (:mod:`.gguf`).

Known limit: SentencePiece models with a normalization charsmap (``nmt_nfkc`` and the like;
not Llama/Mistral, whose normalizer is ``identity``) use ``tokenizers``' Precompiled normalizer,
which rewrites multi-codepoint grapheme clusters differently from sentencepiece (``"\\r\\n"``, a
compatibility character followed by a combining mark, half-width kana with a voicing mark).
That is also what ``transformers``' fast tokenizers do. Only BPE models without user-defined
or unused pieces are converted (others raise :class:`SentencePieceError`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, normalizers
from tokenizers.models import BPE

from mosaic_it.budget.protobuf import (
    ProtoError,
    flag,
    int32,
    iter_fields,
    payload,
    text,
    varint,
)
from mosaic_it.errors import InputError

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
UNIGRAM, BPE_MODEL = 1, 2


class SentencePieceError(InputError):
    """A model that cannot be read or converted; the message names its origin."""


@dataclass(frozen=True)
class SentencePieceModel:
    """The parts of a SentencePiece ModelProto that tokenization depends on.

    Defaults are the proto defaults, used when a field is absent from the file.
    """

    pieces: list[tuple[str, float, int]]  # (piece, score, type), in id order
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    unk_id: int = 0
    bos_id: int = 1  # -1: the model has no BOS
    eos_id: int = 2
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True

    def special_piece(self, index: int) -> str | None:
        """The piece at ``index`` (a bos_id/eos_id), or None when disabled (-1)/out of range."""
        return self.pieces[index][0] if 0 <= index < len(self.pieces) else None


# --------------------------------------------------------------------------------------
# Parsing a .model file
# --------------------------------------------------------------------------------------


def parse_sentencepiece_model(data: bytes, origin: str) -> SentencePieceModel:
    """Parse a serialized ``sentencepiece.ModelProto`` (see sentencepiece_model.proto)."""
    try:
        return _parse_model_proto(data)
    except ProtoError as exc:
        raise SentencePieceError(f"{origin}: not a valid SentencePiece model ({exc})") from exc


# Fields read from ModelProto.trainer_spec (2) and ModelProto.normalizer_spec (3):
# field number -> (attribute of SentencePieceModel, decoder).  Everything else is skipped.
_Decoder = Callable[[int, Any, str], Any]
_TRAINER_FIELDS: dict[int, tuple[str, _Decoder]] = {
    3: ("model_type", varint),
    24: ("treat_whitespace_as_suffix", flag),
    35: ("byte_fallback", flag),
    40: ("unk_id", int32),
    41: ("bos_id", int32),
    42: ("eos_id", int32),
}
_NORMALIZER_FIELDS: dict[int, tuple[str, _Decoder]] = {
    1: ("normalizer_name", text),
    2: ("precompiled_charsmap", payload),
    3: ("add_dummy_prefix", flag),
    4: ("remove_extra_whitespaces", flag),
    5: ("escape_whitespaces", flag),
}


def _parse_model_proto(data: bytes) -> SentencePieceModel:
    pieces: list[tuple[str, float, int]] = []
    fields: dict[str, Any] = {}
    for number, wire, value in iter_fields(data):
        if number == 1:  # repeated SentencePiece pieces
            pieces.append(_parse_piece(payload(wire, value, "ModelProto.pieces")))
        elif number in (2, 3):
            spec, known = (
                ("TrainerSpec", _TRAINER_FIELDS)
                if number == 2
                else ("NormalizerSpec", _NORMALIZER_FIELDS)
            )
            for n, w, v in iter_fields(payload(wire, value, f"ModelProto.{spec}")):
                if n in known:
                    attribute, decode = known[n]
                    fields[attribute] = decode(w, v, f"{spec}.{attribute}")
        # 4 = SelfTestData, 5 = denormalizer_spec: irrelevant for encoding.
    if not pieces:
        raise ProtoError("no pieces")
    return SentencePieceModel(pieces=pieces, **fields)


def _parse_piece(buf: bytes) -> tuple[str, float, int]:
    piece, score, kind = "", 0.0, NORMAL
    for number, wire, value in iter_fields(buf):
        if number == 1:
            piece = text(wire, value, "SentencePiece.piece")
        elif number == 2:
            if wire != 5 or not isinstance(value, bytes):
                raise ProtoError(f"SentencePiece.score has wire type {wire}, expected float")
            (score,) = struct.unpack("<f", value)
        elif number == 3:
            kind = varint(wire, value, "SentencePiece.type")
    if not piece:
        raise ProtoError("a piece without text")
    if kind not in (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE):
        raise ProtoError(f"piece {piece!r} has unknown type {kind}")
    return piece, score, kind


# --------------------------------------------------------------------------------------
# SentencePiece BPE -> tokenizers.Tokenizer
# --------------------------------------------------------------------------------------


def sentencepiece_bpe_to_tokenizers(
    model: SentencePieceModel, origin: str, user_defined: bool = False
) -> tokenizers.Tokenizer:
    """Build a ``tokenizers`` pipeline that encodes exactly like SentencePiece's BPE model.

    ``user_defined``: take user-defined pieces as added tokens matched in the text as written,
    as llama.cpp does with a GGUF file's (otherwise such a model is refused).
    """
    vocab = _check_convertible(model, origin, user_defined)
    backend = tokenizers.Tokenizer(
        BPE(
            vocab=vocab,
            merges=_merges_from_pieces(model.pieces, vocab),
            unk_token=model.pieces[model.unk_id][0],
            fuse_unk=True,  # SentencePiece joins runs of unknown characters into one <unk>
            byte_fallback=model.byte_fallback,
        )
    )
    backend.normalizer = _normalizer(model)
    backend.pre_tokenizer = None  # SentencePiece BPE merges across the whole text
    backend.decoder = _decoder(model)

    # Control pieces (<s>, </s>) and <unk> are the special tokens.
    backend.add_special_tokens(
        [
            AddedToken(piece, special=True, normalized=False)
            for piece, _, kind in model.pieces
            if kind in (CONTROL, UNKNOWN)
        ]
    )
    if user_defined:
        backend.add_tokens(
            [
                AddedToken(piece, special=False, normalized=False)
                for piece, _, kind in model.pieces
                if kind == USER_DEFINED
            ]
        )
    # SentencePiece treats the text "<s>" as ordinary characters; so do we.  (Without this
    # the added-token matcher would turn it into the BOS id.)
    if hasattr(backend, "encode_special_tokens"):
        backend.encode_special_tokens = True
    return backend


def _check_convertible(
    model: SentencePieceModel, origin: str, user_defined: bool
) -> dict[str, int]:
    """The model's vocabulary (piece -> id), once it is known to convert exactly."""

    def fail(what: str) -> SentencePieceError:
        return SentencePieceError(f"{origin}: unsupported SentencePiece model ({what})")

    if model.model_type != BPE_MODEL:
        type_name = {1: "unigram", 3: "word", 4: "char"}.get(
            model.model_type, str(model.model_type)
        )
        raise fail(
            f"model type {type_name}; only BPE models can be converted, use a tokenizer.json"
        )
    if model.treat_whitespace_as_suffix:
        raise fail("treat_whitespace_as_suffix")
    if not 0 <= model.unk_id < len(model.pieces) or model.pieces[model.unk_id][2] != UNKNOWN:
        raise fail(f"unk_id {model.unk_id} is not an <unk> piece")
    # SentencePiece matches user-defined pieces atomically in the *normalized* text and
    # re-splits unused pieces after merging; neither maps exactly onto tokenizers' added
    # tokens / BPE (the counts would drift), so refuse rather than count approximately.
    # Llama and Mistral models have neither; Gemma has user-defined pieces.
    for kind, label in ((USER_DEFINED, "user-defined"), (UNUSED, "unused")):
        found = [piece for piece, _, k in model.pieces if k == kind]
        if kind == USER_DEFINED and user_defined:
            continue
        if found:
            raise fail(
                f"{len(found)} {label} pieces such as {found[0]!r} cannot be converted exactly; "
                "use the model's tokenizer.json"
            )

    vocab: dict[str, int] = {}
    for index, (piece, _, _) in enumerate(model.pieces):
        if piece in vocab:
            raise SentencePieceError(
                f"{origin}: not a valid SentencePiece model (duplicate piece {piece!r})"
            )
        vocab[piece] = index
    if model.byte_fallback and any(f"<0x{b:02X}>" not in vocab for b in range(256)):
        raise SentencePieceError(
            f"{origin}: byte_fallback is set but the <0x00>..<0xFF> pieces are missing"
        )
    return vocab


def _merges_from_pieces(
    pieces: list[tuple[str, float, int]], vocab: dict[str, int]
) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary.

    SentencePiece BPE stores no merge list: at each step it joins the adjacent pair whose
    concatenation is a piece with the highest score.  ``tokenizers`` applies the merge with
    the lowest rank, so every split of a piece into two pieces becomes a merge, ranked by
    the score of the piece it produces (highest first; ties keep vocabulary order, then
    the ids of the two halves) - the rule of transformers' ``SentencePieceExtractor``.

    Only normal pieces are ever produced by merging in SentencePiece: control pieces such
    as ``</s>`` and byte pieces such as ``<0x0A>`` are not, even when their halves exist
    ("</" + "s>"), so they get no merge here either.
    """
    mergeable = {piece for piece, _, kind in pieces if kind == NORMAL}
    candidates: list[tuple[float, int, int, int, str, str]] = []
    for index, (piece, score, kind) in enumerate(pieces):
        if kind != NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                candidates.append((-score, index, vocab[left], vocab[right], left, right))
    candidates.sort()
    return [(left, right) for *_, left, right in candidates]


def _normalizer(model: SentencePieceModel) -> normalizers.Normalizer | None:
    """SentencePiece's normalizer (normalizer.cc) as a ``tokenizers`` normalizer sequence."""
    steps: list[normalizers.Normalizer] = []
    if model.precompiled_charsmap:
        steps.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        # Only the ASCII space counts as whitespace here (after the charsmap), exactly as in
        # SentencePiece: drop leading and trailing spaces and squeeze runs to one space.
        # \A and \z, not ^ and $: Oniguruma's ^/$ also match at line breaks.
        steps.append(normalizers.Replace(Regex(r"\A +| +\z"), ""))
        steps.append(normalizers.Replace(Regex(r" {2,}"), " "))
    space = "▁" if model.escape_whitespaces else " "
    if model.add_dummy_prefix:
        steps.append(normalizers.Prepend(space))  # a no-op on the empty string, as in SentencePiece
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    return normalizers.Sequence(steps) if steps else None


def _decoder(model: SentencePieceModel) -> decoders.Decoder:
    steps: list[decoders.Decoder] = []
    if model.escape_whitespaces:
        steps.append(decoders.Replace("▁", " "))
    if model.byte_fallback:
        steps.append(decoders.ByteFallback())
    steps.append(decoders.Fuse())
    if model.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)
