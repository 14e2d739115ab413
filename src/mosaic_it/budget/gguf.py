"""The tokenizer a GGUF file describes, as a ``tokenizers.Tokenizer``.

A GGUF file (llama.cpp's model format) carries its tokenizer in its metadata: the model kind
(``tokenizer.ggml.model``: ``gpt2`` for byte-level BPE, ``llama`` for SentencePiece BPE), the
tokens with their types (normal, unknown, control, user-defined, unused, byte), the merges
(byte-level BPE) or scores (SentencePiece), and for byte-level BPE the name of its
pre-tokenizer (``tokenizer.ggml.pre``). A GGUF file stores no split expression: llama.cpp keeps
one for each pre-tokenizer name, and :data:`PRE_TOKENIZERS` holds the same expressions.

Only the metadata is read, by :func:`read_metadata` (the tensors after it are never touched):
the reader of the ``gguf`` package takes seconds to parse every field of a large vocabulary,
this one a fraction of that. Tokens of type control or unknown become special added tokens,
user-defined ones added tokens matched in the text as written (as llama.cpp matches them).
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import tokenizers
from tokenizers import AddedToken, Regex, decoders, pre_tokenizers
from tokenizers.models import BPE

from mosaic_it.budget.sentencepiece_bpe import (
    BPE_MODEL,
    BYTE,
    CONTROL,
    NORMAL,
    UNKNOWN,
    USER_DEFINED,
    SentencePieceModel,
    sentencepiece_bpe_to_tokenizers,
)
from mosaic_it.errors import InputError

MAGIC = b"GGUF"
T = TypeVar("T")
# GGUF value types: (struct format, size) of the scalar ones; 8 is a string, 9 an array
_SCALARS = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_ARRAY_CODES = {4: "I", 5: "i", 6: "f"}  # arrays read in one step (token types, scores)
STRING, ARRAY = 8, 9

# token types: llama.cpp's are SentencePiece's (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE)

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CASED_LETTERS = (  # an upper-case run then lower case, or upper case then lower case
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+{0}"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*{0}"
)
TEKKEN_PATTERN = _CASED_LETTERS.replace("{0}", "") + (
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
O200K_PATTERN = _CASED_LETTERS.replace("{0}", r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?") + (
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's pre-tokenizer names and what they split with: (digits first, one a piece; the
# split expression). Names llama.cpp gives the same expressions share an entry.
PRE_TOKENIZERS: dict[str, tuple[bool, str]] = {
    **dict.fromkeys(
        ("gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo", "jais"), (False, GPT2_PATTERN)
    ),
    **dict.fromkeys(
        ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"),
        (True, GPT2_PATTERN),
    ),
    **dict.fromkeys(
        ("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx", "falcon3"), (False, LLAMA3_PATTERN)
    ),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen"), (False, QWEN2_PATTERN)),
    "tekken": (False, TEKKEN_PATTERN),
    "gpt-4o": (False, O200K_PATTERN),
}


class GGUFError(InputError):
    """The file is no GGUF file, or its tokenizer cannot be built (the message says why)."""


def read_metadata(path: str | Path, prefix: str = "tokenizer.") -> dict[str, Any]:
    """The metadata of a GGUF file whose keys start with ``prefix`` (plus
    ``general.architecture``): strings, numbers, and lists of them."""
    return _on_map(path, lambda buf: _parse(buf, prefix)[0])


def metadata_digest(path: str | Path) -> str:
    """SHA-256 of the file's header and metadata, everything before its tensors: what the
    tokenizer is built from (a file of gigabytes is hashed in the time of its vocabulary)."""

    def digest(buf: memoryview) -> str:
        _, end = _parse(buf, "\0")  # no key starts with NUL: values are skipped, not read
        return hashlib.sha256(buf[:end]).hexdigest()

    return _on_map(path, digest)


def _on_map(path: str | Path, read: Callable[[memoryview], T]) -> T:
    """``read`` of the file's bytes, mapped; GGUFError for a file that is no GGUF file."""
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file
            raise GGUFError("not a GGUF file (empty)") from exc
    try:
        return read(memoryview(data))
    except GGUFError as exc:
        problem = str(exc)  # the traceback holds views of the map: let it go before closing
    finally:
        try:
            data.close()
        except BufferError:  # a view still held: the map closes when it is collected
            pass
    raise GGUFError(problem)


def _parse(buf: memoryview, prefix: str) -> tuple[dict[str, Any], int]:
    """The kept metadata, and where the metadata ends."""
    if bytes(buf[:4]) != MAGIC:
        raise GGUFError("not a GGUF file (no GGUF magic number)")
    try:
        (version,) = struct.unpack_from("<I", buf, 4)
        if version not in (2, 3):
            raise GGUFError(f"GGUF version {version}, expected 2 or 3")
        _, count = struct.unpack_from("<QQ", buf, 8)
        pos = 24
        found: dict[str, Any] = {}
        for _ in range(count):
            key, pos = _string(buf, pos)
            (kind,) = struct.unpack_from("<I", buf, pos)
            keep = key.startswith(prefix) or key == "general.architecture"
            value, pos = _value(buf, pos + 4, kind, keep)
            if keep:
                found[key] = value
        return found, pos
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise GGUFError(f"truncated or corrupt GGUF metadata ({exc})") from exc


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    end = pos + 8 + n
    if end > len(buf):
        raise GGUFError("truncated GGUF metadata (a string runs past the end)")
    return str(buf[pos + 8 : end], "utf-8"), end


def _value(buf: memoryview, pos: int, kind: int, keep: bool) -> tuple[Any, int]:
    if kind in _SCALARS:
        code, size = _SCALARS[kind]
        return struct.unpack_from("<" + code, buf, pos)[0], pos + size
    if kind == STRING:
        return _string(buf, pos)
    if kind != ARRAY:
        raise GGUFError(f"unknown GGUF value type {kind}")
    item, n = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if item in _SCALARS:
        code, size = _SCALARS[item]
        end = pos + n * size
        if not keep:
            return None, end
        if item in _ARRAY_CODES:
            packed = array(_ARRAY_CODES[item])
            packed.frombytes(buf[pos:end])
            return packed.tolist(), end
        return list(struct.unpack_from(f"<{n}{code}", buf, pos)), end
    values = []
    for _ in range(n):
        if item == STRING and not keep:
            (size,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + size
            continue
        value, pos = _value(buf, pos, item, keep)
        values.append(value)
    return (values if keep else None), pos


def build_backend(meta: dict[str, Any]) -> tuple[tokenizers.Tokenizer, str | None, str | None]:
    """The tokenizer the metadata describes, with its BOS and EOS tokens (None when it adds
    none at the start)."""
    kind = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise GGUFError("no tokenizer in the metadata (tokenizer.ggml.tokens missing)")
    types = meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if len(types) != len(tokens):
        raise GGUFError("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length")
    if kind == "gpt2":
        backend = _byte_level(meta, tokens, types)
        add_bos = meta.get("tokenizer.ggml.add_bos_token", False)
    elif kind == "llama":
        backend = _sentencepiece(meta, tokens, types)
        add_bos = meta.get("tokenizer.ggml.add_bos_token", True)
    else:
        raise GGUFError(
            f"tokenizer.ggml.model {kind!r}: only 'gpt2' (byte-level BPE) and 'llama' "
            "(SentencePiece BPE) tokenizers are read"
        )

    def token(key: str) -> str | None:
        i = meta.get(key)
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None

    bos = token("tokenizer.ggml.bos_token_id") if add_bos else None
    return backend, bos, token("tokenizer.ggml.eos_token_id")


def _byte_level(meta: dict[str, Any], tokens: list[str], types: list[int]) -> tokenizers.Tokenizer:
    merges = meta.get("tokenizer.ggml.merges")
    if not isinstance(merges, list):
        raise GGUFError("a 'gpt2' tokenizer without tokenizer.ggml.merges")
    pre = meta.get("tokenizer.ggml.pre")
    if pre not in PRE_TOKENIZERS:
        raise GGUFError(
            f"tokenizer.ggml.pre {pre!r}: a pre-tokenizer whose split expression is not known "
            f"here (known: {', '.join(sorted(PRE_TOKENIZERS))})"
        )
    digits, pattern = PRE_TOKENIZERS[pre]
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = []
    for m in merges:
        left, _, right = m.partition(" ")
        pairs.append((left, right))
    # llama.cpp takes a word that is in the vocabulary whole as one token for these two, as
    # their tokenizer.json files say (ignore_merges)
    whole_words = pattern in (LLAMA3_PATTERN, TEKKEN_PATTERN)
    backend = tokenizers.Tokenizer(
        BPE(vocab=vocab, merges=pairs, fuse_unk=False, ignore_merges=whole_words)
    )
    steps: list[pre_tokenizers.PreTokenizer] = []
    if digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if pattern == GPT2_PATTERN:
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    else:
        steps.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(steps)
    backend.decoder = decoders.ByteLevel()
    _add_tokens(backend, tokens, types)
    return backend


def _add_tokens(backend: tokenizers.Tokenizer, tokens: list[str], types: list[int]) -> None:
    """Control and unknown tokens as special tokens, user-defined ones as added tokens."""
    special = [t for t, k in zip(tokens, types) if k in (CONTROL, UNKNOWN)]
    user = [t for t, k in zip(tokens, types) if k == USER_DEFINED]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])


def _sentencepiece(
    meta: dict[str, Any], tokens: list[str], types: list[int]
) -> tokenizers.Tokenizer:
    scores = meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    if not isinstance(unk, int):
        unk = next((i for i, k in enumerate(types) if k == UNKNOWN), -1)
    pieces = list(zip(tokens, scores, types))
    if 0 <= unk < len(pieces):  # some files type their unknown token as a control token
        pieces[unk] = (tokens[unk], scores[unk], UNKNOWN)
    model = SentencePieceModel(
        pieces=pieces,
        model_type=BPE_MODEL,
        byte_fallback=BYTE in types,
        unk_id=unk,
        bos_id=meta.get("tokenizer.ggml.bos_token_id", -1),
        eos_id=meta.get("tokenizer.ggml.eos_token_id", -1),
        add_dummy_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
        remove_extra_whitespaces=False,  # llama.cpp keeps every space
    )
    return sentencepiece_bpe_to_tokenizers(model, origin="GGUF", user_defined=True)
