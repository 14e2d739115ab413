"""Token counting behind one small interface.

Every size decision in mosaic-it (does this group of instruction/response pairs fit the
token budget?) goes through :class:`Tokenizer`.  It wraps a Hugging Face
``tokenizers.Tokenizer`` (Rust, fast, batch-parallel) and is obtained with
:func:`load_tokenizer`:

* ``load_tokenizer()`` / ``load_tokenizer("default")`` - the bundled Mistral-7B v0.1
  SentencePiece model (``data/tokenizer/tokenizer.model.v1``, Apache-2.0), usable offline;
* a path to a ``tokenizer.json``;
* a directory holding ``tokenizer.json`` (or, failing that, ``tokenizer.model``) and
  optionally ``tokenizer_config.json`` (read for ``bos_token``/``eos_token``/``add_bos_token``);
* a path to a SentencePiece ``.model`` file;
* a path to a GGUF file (``*.gguf``): the tokenizer in its metadata (:mod:`.gguf_tokenizer`);
* otherwise a Hugging Face Hub repository id (needs network access).

SentencePiece models are converted without the ``sentencepiece`` (or ``protobuf``)
package: :func:`_parse_sentencepiece_model` reads the protobuf by hand and
:func:`_sentencepiece_bpe_to_tokenizers` builds the equivalent ``tokenizers`` BPE
pipeline, which reproduces ``SentencePieceProcessor.encode`` id-for-id (tests check
this on hand-picked strings, random unicode and real data).

Counts never include special tokens added by a post-processor (BOS/EOS): callers add
those explicitly, via :attr:`Tokenizer.bos_token` / :attr:`Tokenizer.eos_token`.
Truncation and padding settings stored in a tokenizer.json are switched off.

Special-token *text* inside the input (a literal ``"</s>"`` in a response) follows the
reference implementation of each format: converted SentencePiece models encode it as
ordinary characters, as sentencepiece does; tokenizer.json models match it as the special
token, as ``transformers`` does by default.

Known limit of the conversion: SentencePiece models with a normalization charsmap
(``nmt_nfkc`` and the like; not Llama/Mistral, whose normalizer is ``identity``) use
``tokenizers``' Precompiled normalizer, which rewrites multi-codepoint grapheme clusters
differently from sentencepiece (``"\\r\\n"``, a compatibility character followed by a
combining mark, half-width kana with a voicing mark).  That is also what ``transformers``'
fast tokenizers do.  Only BPE SentencePiece models without user-defined or unused pieces
are converted (others raise :class:`TokenizerError` pointing at their tokenizer.json).
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, normalizers
from tokenizers.models import BPE

__all__ = [
    "DEFAULT_TOKENIZER",
    "Tokenizer",
    "TokenizerError",
    "load_tokenizer",
]

DEFAULT_TOKENIZER = "default"

_BUNDLED_RESOURCE = "data/tokenizer/tokenizer.model.v1"
_BUNDLED_JSON = "data/tokenizer/tokenizer.json"  # the model converted, ready to load
_BUNDLED_NAME = "mistral-7b-v0.1 (bundled)"
_BUNDLED_BOS, _BUNDLED_EOS = "<s>", "</s>"  # the model's bos_id and eos_id pieces

# Special-token spellings tried, in order, when no tokenizer_config.json says which
# tokens are BOS/EOS.  Only tokens registered as *special* added tokens count.
#   <s>/</s>                      Llama-1/2, Mistral, Mixtral (SentencePiece family)
#   <|begin_of_text|>/<|end_of_text|>  Llama-3 base; <|eot_id|> is Llama-3-Instruct's end of turn
#   <bos>/<eos>                   Gemma
#   <|endoftext|>                 GPT-2 / Qwen2 base (Qwen2 has no BOS at all);
#   <|im_end|>                    ChatML end of turn (Qwen2-Instruct), last resort
_BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<bos>")
_EOS_CANDIDATES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>")


class TokenizerError(ValueError):
    """A tokenizer could not be loaded; the message names the path (or name) and the problem."""


@dataclass(frozen=True)
class Tokenizer:
    """A token counter.  Immutable; safe to share between threads.

    ``bos_token``/``eos_token`` are the token strings a training pipeline puts at the start
    and end of a sequence (``None`` when the model has none or the tokenizer config says it
    is not added, e.g. Qwen2 has no BOS).  They are informational: :meth:`count` and
    :meth:`encode` never add them.
    """

    name: str
    bos_token: str | None
    eos_token: str | None
    backend: tokenizers.Tokenizer = field(repr=False, compare=False)

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, without any special tokens added."""
        return len(self.backend.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: list[str]) -> list[int]:
        """:meth:`count` for many texts at once (encoded in parallel by the Rust library)."""
        if not texts:
            return []
        # len() of an Encoding is its token count: no list of ids is built
        return [len(enc) for enc in self._encode_batch(texts)]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without any special tokens added."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """:meth:`encode` for many texts at once (encoded in parallel by the Rust library)."""
        if not texts:
            return []
        return [enc.ids for enc in self._encode_batch(texts)]

    def _encode_batch(self, texts: list[str]) -> list[tokenizers.Encoding]:
        # encode_batch_fast (tokenizers >= 0.20) skips offset tracking, which we never use.
        fast = getattr(self.backend, "encode_batch_fast", None)
        encode = fast if fast is not None else self.backend.encode_batch
        return encode(list(texts), add_special_tokens=False)

    def special_strings(self) -> frozenset[str]:
        """The tokenizer's special tokens (added tokens marked special, BOS and EOS): strings
        that become control tokens wherever they occur in a text."""
        decoder = self.backend.get_added_tokens_decoder()
        strings = {tok.content for tok in decoder.values() if tok.special}
        strings |= {t for t in (self.bos_token, self.eos_token) if t}
        return frozenset(strings)

    def added_strings(self) -> frozenset[str]:
        """Every added token of the tokenizer, special or not."""
        return frozenset(tok.content for tok in self.backend.get_added_tokens_decoder().values())

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` (special tokens skipped); handy for debugging and tests."""
        return self.backend.decode(ids, skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        """Size of the vocabulary, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

# A Hub repository id: "name" or "owner/name".
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?")


def load_tokenizer(spec: str | os.PathLike[str] | None = None) -> Tokenizer:
    """Load a tokenizer; see the module docstring for what ``spec`` may be.

    Built tokenizers are cached in-process (per path, modification time and size), so
    calling this repeatedly is cheap.  Raises :class:`TokenizerError` on any failure.
    """
    if spec is None or spec == DEFAULT_TOKENIZER:
        return _load_bundled()

    text = os.fspath(spec)
    if not text.strip():
        raise TokenizerError(f"{text!r}: empty tokenizer spec (use None or {DEFAULT_TOKENIZER!r})")
    path = Path(text).expanduser()
    if path.is_dir():
        return _load_directory(path)
    if path.is_file():
        if path.suffix == ".json":
            return _load_tokenizer_json(path, config=None)
        if path.suffix == ".gguf":
            return _load_gguf(path)
        # Anything else is taken to be a SentencePiece model (the bundled one is *.model.v1).
        return _load_sentencepiece(path, config=None)
    if path.exists():
        raise TokenizerError(f"{text}: not a regular file or directory")

    looks_like_path = (
        path.is_absolute()
        or text.startswith((".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or path.suffix in (".json", ".model", ".v1", ".gguf")
    )
    if looks_like_path or not _HUB_ID.fullmatch(text):
        raise TokenizerError(f"{text}: no such file or directory")
    return _load_hub(text)


@functools.lru_cache(maxsize=1)
def _load_bundled() -> Tokenizer:
    """The bundled model, read from its ready converted tokenizer.json (a test keeps that file
    equal to converting the model: reading it takes a quarter of the time); the model file is
    converted instead when the JSON cannot be read."""
    try:
        text = resources.files("mosaic_it").joinpath(_BUNDLED_JSON).read_text(encoding="utf-8")
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception:  # noqa: BLE001 - missing, or from a tokenizers it cannot read: convert
        return convert_bundled()
    if hasattr(backend, "encode_special_tokens"):
        backend.encode_special_tokens = True  # a setting of the object, not of the file
    return Tokenizer(
        name=_BUNDLED_NAME, bos_token=_BUNDLED_BOS, eos_token=_BUNDLED_EOS, backend=backend
    )


def convert_bundled() -> Tokenizer:
    """The bundled SentencePiece model converted to ``tokenizers``: what
    ``data/tokenizer/tokenizer.json`` holds (``scripts/build_tokenizer_json.py`` writes it)."""
    resource = resources.files("mosaic_it").joinpath(_BUNDLED_RESOURCE)
    try:
        data = resource.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"bundled tokenizer {_BUNDLED_RESOURCE}: cannot read ({exc})") from exc
    model = _parse_sentencepiece_model(data, origin=f"bundled tokenizer {_BUNDLED_RESOURCE}")
    backend = _sentencepiece_bpe_to_tokenizers(model, origin=_BUNDLED_RESOURCE)
    return Tokenizer(
        name=_BUNDLED_NAME,
        bos_token=model.special_piece(model.bos_id),
        eos_token=model.special_piece(model.eos_id),
        backend=backend,
    )


def _file_key(path: Path) -> tuple[str, int, int]:
    """Cache key for a file: resolved path plus mtime and size, so edits are noticed."""
    try:
        st = path.stat()
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot stat ({exc.strerror or exc})") from exc
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _load_directory(directory: Path) -> Tokenizer:
    config_path = directory / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.is_file() else None
    if config is not None and not isinstance(config, dict):
        raise TokenizerError(f"{config_path}: expected a JSON object")
    if (directory / "tokenizer.json").is_file():
        return _load_tokenizer_json(
            directory / "tokenizer.json", config=config, name=str(directory)
        )
    if (directory / "tokenizer.model").is_file():
        return _load_sentencepiece(
            directory / "tokenizer.model", config=config, name=str(directory)
        )
    raise TokenizerError(f"{directory}: directory has neither tokenizer.json nor tokenizer.model")


def _load_tokenizer_json(path: Path, config: dict | None, name: str | None = None) -> Tokenizer:
    backend = _cached_tokenizer_json(_file_key(path))
    bos, eos = _special_tokens_from_config(config, *_infer_special_tokens(backend))
    return Tokenizer(name=name or str(path), bos_token=bos, eos_token=eos, backend=backend)


@functools.lru_cache(maxsize=16)
def _cached_tokenizer_json(key: tuple[str, int, int]) -> tokenizers.Tokenizer:
    path = key[0]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path}: cannot read ({exc})") from exc
    try:
        json.loads(text)  # separate check: a clearer message than the Rust parser's
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from exc
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as exc:  # the Rust side raises plain Exception
        raise TokenizerError(f"{path}: not a valid tokenizer.json ({exc})") from exc
    return _neutralise(backend)


def _load_sentencepiece(path: Path, config: dict | None, name: str | None = None) -> Tokenizer:
    model, backend = _cached_sentencepiece(_file_key(path))
    # The model itself records its BOS/EOS (trainer_spec.bos_id/eos_id, -1 = none).
    bos, eos = _special_tokens_from_config(
        config, model.special_piece(model.bos_id), model.special_piece(model.eos_id)
    )
    return Tokenizer(name=name or str(path), bos_token=bos, eos_token=eos, backend=backend)


@functools.lru_cache(maxsize=8)
def _cached_sentencepiece(
    key: tuple[str, int, int],
) -> tuple[_SentencePieceModel, tokenizers.Tokenizer]:
    path = key[0]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    model = _parse_sentencepiece_model(data, origin=path)
    return model, _sentencepiece_bpe_to_tokenizers(model, origin=path)


def _load_gguf(path: Path) -> Tokenizer:
    backend, bos, eos = _cached_gguf(_file_key(path))
    return Tokenizer(name=str(path), bos_token=bos, eos_token=eos, backend=backend)


@functools.lru_cache(maxsize=4)
def _cached_gguf(key: tuple[str, int, int]) -> tuple[tokenizers.Tokenizer, str | None, str | None]:
    from mosaic_it.budget.gguf import GGUFError, build_backend, read_metadata

    path = key[0]
    try:
        return build_backend(read_metadata(path))
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except GGUFError as exc:
        raise TokenizerError(f"{path}: {exc}") from exc


def _load_hub(name: str) -> Tokenizer:
    backend = _cached_hub(name)
    bos, eos = _special_tokens_from_config(_hub_config(name), *_infer_special_tokens(backend))
    return Tokenizer(name=name, bos_token=bos, eos_token=eos, backend=backend)


@functools.lru_cache(maxsize=8)
def _cached_hub(name: str) -> tokenizers.Tokenizer:
    try:
        backend = _from_pretrained(name)
    except TokenizerError:
        raise
    except Exception as exc:  # network errors, 404s, gated repos: all plain Exception
        raise TokenizerError(
            f"{name}: not a local file or directory, and loading it from the Hugging Face Hub "
            f"failed ({exc}). Check the path, or the network connection and repository id."
        ) from exc
    return _neutralise(backend)


def _from_pretrained(name: str) -> tokenizers.Tokenizer:
    """Fetch tokenizer.json from the Hub (a seam, so tests can simulate being offline)."""
    from mosaic_it.io.hub import hub_unreachable

    offline = hub_unreachable()
    if offline:
        raise TokenizerError(f"{name}: not a local file or directory; as a hub name: {offline}")
    return tokenizers.Tokenizer.from_pretrained(name)


def _hub_config(name: str) -> dict | None:
    """tokenizer_config.json of a Hub repo, if huggingface_hub is installed and it exists."""
    try:
        from huggingface_hub import hf_hub_download  # optional dependency ("hub" extra)
    except ImportError:
        return None
    try:
        config = json.loads(Path(hf_hub_download(name, "tokenizer_config.json")).read_text("utf-8"))
    except Exception:  # no config in the repo, or offline: fall back to inference
        return None
    return config if isinstance(config, dict) else None


def _neutralise(backend: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    """Make counts depend on the text only: a tokenizer.json may ship truncation/padding."""
    backend.no_truncation()
    backend.no_padding()
    return backend


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from exc


def _token_content(value: object) -> str | None:
    """A token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"] or None
    return None


def _infer_special_tokens(backend: tokenizers.Tokenizer) -> tuple[str | None, str | None]:
    """(bos, eos): the first of the known spellings registered as special added tokens."""
    special = {tok.content for tok in backend.get_added_tokens_decoder().values() if tok.special}
    bos = next((t for t in _BOS_CANDIDATES if t in special), None)
    eos = next((t for t in _EOS_CANDIDATES if t in special), None)
    return bos, eos


def _special_tokens_from_config(
    config: dict | None, bos: str | None, eos: str | None
) -> tuple[str | None, str | None]:
    """(bos, eos) as tokenizer_config.json says, else the given defaults.

    A key present in the config wins, even when null (Qwen2's ``"bos_token": null``).
    ``"add_bos_token": false`` means no BOS is prepended, so bos is reported as None.
    """
    config = config or {}
    if "bos_token" in config:
        bos = _token_content(config["bos_token"])
    if "eos_token" in config:
        eos = _token_content(config["eos_token"])
    if config.get("add_bos_token") is False:
        bos = None
    return bos, eos


# --------------------------------------------------------------------------------------
# SentencePiece .model -> tokenizers.Tokenizer
# --------------------------------------------------------------------------------------

# SentencePiece.Type
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
_UNIGRAM, _BPE = 1, 2


class _ProtoError(Exception):
    pass


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint too long")


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a serialized protobuf message.

    Values: int for varints (wire type 0), bytes for length-delimited fields (2) and for
    fixed64/fixed32 fields (1/5, raw little-endian).  Groups (3/4) are not supported.
    """
    pos, end = 0, len(buf)
    value: int | bytes
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _ProtoError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise _ProtoError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _ProtoError("truncated fixed-width field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        yield number, wire, value


def _varint(wire: int, value: int | bytes, what: str) -> int:
    """A varint field's value; a wrong wire type means the file is not what we think."""
    if wire != 0 or not isinstance(value, int):
        raise _ProtoError(f"{what} has wire type {wire}, expected a varint")
    return value


def _int32(wire: int, value: int | bytes, what: str) -> int:
    """An int32 varint; negative values are encoded as 64-bit two's complement."""
    number = _varint(wire, value, what)
    return number - (1 << 64) if number >= 1 << 63 else number


def _bytes(wire: int, value: int | bytes, what: str) -> bytes:
    """A length-delimited field's payload (string, bytes or sub-message)."""
    if wire != 2 or not isinstance(value, bytes):
        raise _ProtoError(f"{what} has wire type {wire}, expected length-delimited")
    return value


@dataclass(frozen=True)
class _SentencePieceModel:
    """The parts of a SentencePiece ModelProto that tokenization depends on.

    Defaults are the proto defaults, used when a field is absent from the file.
    """

    pieces: list[tuple[str, float, int]]  # (piece, score, type), in id order
    model_type: int = _UNIGRAM
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


def _parse_sentencepiece_model(data: bytes, origin: str) -> _SentencePieceModel:
    """Parse a serialized ``sentencepiece.ModelProto`` (see sentencepiece_model.proto)."""
    try:
        return _parse_model_proto(data)
    except _ProtoError as exc:
        raise TokenizerError(f"{origin}: not a valid SentencePiece model ({exc})") from exc


# Fields read from ModelProto.trainer_spec (2) and ModelProto.normalizer_spec (3):
# field number -> (attribute of _SentencePieceModel, decoder).  Everything else is skipped.
_TRAINER_FIELDS = {
    3: ("model_type", _varint),
    24: ("treat_whitespace_as_suffix", lambda w, v, what: bool(_varint(w, v, what))),
    35: ("byte_fallback", lambda w, v, what: bool(_varint(w, v, what))),
    40: ("unk_id", _int32),
    41: ("bos_id", _int32),
    42: ("eos_id", _int32),
}
_NORMALIZER_FIELDS = {
    1: ("normalizer_name", lambda w, v, what: _utf8(_bytes(w, v, what), what)),
    2: ("precompiled_charsmap", _bytes),
    3: ("add_dummy_prefix", lambda w, v, what: bool(_varint(w, v, what))),
    4: ("remove_extra_whitespaces", lambda w, v, what: bool(_varint(w, v, what))),
    5: ("escape_whitespaces", lambda w, v, what: bool(_varint(w, v, what))),
}


def _parse_model_proto(data: bytes) -> _SentencePieceModel:
    pieces: list[tuple[str, float, int]] = []
    fields: dict[str, Any] = {}
    for number, wire, value in _iter_fields(data):
        if number == 1:  # repeated SentencePiece pieces
            pieces.append(_parse_piece(_bytes(wire, value, "ModelProto.pieces")))
        elif number in (2, 3):
            spec, known = (
                ("TrainerSpec", _TRAINER_FIELDS)
                if number == 2
                else ("NormalizerSpec", _NORMALIZER_FIELDS)
            )
            for n, w, v in _iter_fields(_bytes(wire, value, f"ModelProto.{spec}")):
                if n in known:
                    attribute, decode = known[n]
                    fields[attribute] = decode(w, v, f"{spec}.{attribute}")
        # 4 = SelfTestData, 5 = denormalizer_spec: irrelevant for encoding.
    if not pieces:
        raise _ProtoError("no pieces")
    return _SentencePieceModel(pieces=pieces, **fields)


def _parse_piece(buf: bytes) -> tuple[str, float, int]:
    piece, score, kind = "", 0.0, _NORMAL
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            piece = _utf8(_bytes(wire, value, "SentencePiece.piece"), "SentencePiece.piece")
        elif number == 2:
            if wire != 5 or not isinstance(value, bytes):
                raise _ProtoError(f"SentencePiece.score has wire type {wire}, expected float")
            (score,) = struct.unpack("<f", value)
        elif number == 3:
            kind = _varint(wire, value, "SentencePiece.type")
    if not piece:
        raise _ProtoError("a piece without text")
    if kind not in (_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE):
        raise _ProtoError(f"piece {piece!r} has unknown type {kind}")
    return piece, score, kind


def _utf8(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _ProtoError(f"{what} is not UTF-8") from exc


def _sentencepiece_bpe_to_tokenizers(
    model: _SentencePieceModel, origin: str, user_defined: bool = False
) -> tokenizers.Tokenizer:
    """Build a ``tokenizers`` pipeline that encodes exactly like SentencePiece's BPE model.

    ``user_defined``: take user-defined pieces as added tokens matched in the text as written,
    as llama.cpp does with a GGUF file's (otherwise such a model is refused).
    """

    def fail(what: str) -> TokenizerError:
        return TokenizerError(f"{origin}: unsupported SentencePiece model ({what})")

    if model.model_type != _BPE:
        type_name = {1: "unigram", 3: "word", 4: "char"}.get(
            model.model_type, str(model.model_type)
        )
        raise fail(
            f"model type {type_name}; only BPE models can be converted, use a tokenizer.json"
        )
    if model.treat_whitespace_as_suffix:
        raise fail("treat_whitespace_as_suffix")
    if not 0 <= model.unk_id < len(model.pieces) or model.pieces[model.unk_id][2] != _UNKNOWN:
        raise fail(f"unk_id {model.unk_id} is not an <unk> piece")
    # SentencePiece matches user-defined pieces atomically in the *normalized* text and
    # re-splits unused pieces after merging; neither maps exactly onto tokenizers' added
    # tokens / BPE (the counts would drift), so refuse rather than count approximately.
    # Llama and Mistral models have neither; Gemma has user-defined pieces.
    for kind, label in ((_USER_DEFINED, "user-defined"), (_UNUSED, "unused")):
        found = [piece for piece, _, k in model.pieces if k == kind]
        if kind == _USER_DEFINED and user_defined:
            continue
        if found:
            raise fail(
                f"{len(found)} {label} pieces such as {found[0]!r} cannot be converted exactly; "
                "use the model's tokenizer.json"
            )

    vocab: dict[str, int] = {}
    for index, (piece, _, _) in enumerate(model.pieces):
        if piece in vocab:
            raise TokenizerError(
                f"{origin}: not a valid SentencePiece model (duplicate piece {piece!r})"
            )
        vocab[piece] = index
    if model.byte_fallback and any(f"<0x{b:02X}>" not in vocab for b in range(256)):
        raise TokenizerError(
            f"{origin}: byte_fallback is set but the <0x00>..<0xFF> pieces are missing"
        )

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
            if kind in (_CONTROL, _UNKNOWN)
        ]
    )
    if user_defined:
        backend.add_tokens(
            [
                AddedToken(piece, special=False, normalized=False)
                for piece, _, kind in model.pieces
                if kind == _USER_DEFINED
            ]
        )
    # SentencePiece treats the text "<s>" as ordinary characters; so do we.  (Without this
    # the added-token matcher would turn it into the BOS id.)
    if hasattr(backend, "encode_special_tokens"):
        backend.encode_special_tokens = True
    return backend


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
    mergeable = {piece for piece, _, kind in pieces if kind == _NORMAL}
    candidates: list[tuple[float, int, int, int, str, str]] = []
    for index, (piece, score, kind) in enumerate(pieces):
        if kind != _NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                candidates.append((-score, index, vocab[left], vocab[right], left, right))
    candidates.sort()
    return [(left, right) for *_, left, right in candidates]


def _normalizer(model: _SentencePieceModel) -> normalizers.Normalizer | None:
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


def _decoder(model: _SentencePieceModel) -> decoders.Decoder:
    steps: list[decoders.Decoder] = []
    if model.escape_whitespaces:
        steps.append(decoders.Replace("▁", " "))
    if model.byte_fallback:
        steps.append(decoders.ByteFallback())
    steps.append(decoders.Fuse())
    if model.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    return decoders.Sequence(steps)
