"""Token counting behind one small interface.

Every size decision in mosaic-it (does this group of instruction/response pairs fit the
token budget?) goes through :class:`Tokenizer`.  It wraps a Hugging Face
``tokenizers.Tokenizer`` (Rust, fast, batch-parallel) and is obtained with
:func:`load_tokenizer`:

* ``load_tokenizer()`` / ``load_tokenizer("default")`` - the bundled Mistral-7B v0.1
  SentencePiece model (Apache-2.0), usable offline: the package ships it converted
  (``data/tokenizer/tokenizer.json``); the model file it is converted from
  (``tokenizer.model.v1``) stays in the repository, under ``tests/data/tokenizer/``;
* a path to a ``tokenizer.json``;
* a directory holding ``tokenizer.json`` (or, failing that, ``tokenizer.model``) and
  optionally ``tokenizer_config.json`` (read for ``bos_token``/``eos_token``/``add_bos_token``);
* a path to a SentencePiece ``.model`` file;
* a path to a GGUF file (``*.gguf``): the tokenizer in its metadata (:mod:`.gguf`);
* otherwise a Hugging Face Hub repository id (needs network access).

SentencePiece models are converted without the ``sentencepiece`` (or ``protobuf``)
package, by :mod:`.sentencepiece_bpe` (which reads the protobuf with :mod:`.protobuf`): the
``tokenizers`` BPE pipeline it builds reproduces ``SentencePieceProcessor.encode`` id-for-id.

Counts never include special tokens added by a post-processor (BOS/EOS): callers add
those explicitly, via :attr:`Tokenizer.bos_token` / :attr:`Tokenizer.eos_token`.

A loaded tokenizer carries a digest of its content (:attr:`Tokenizer.digest`: a
``tokenizer.json``'s text, a GGUF conversion's key, else its own serialization), under which
the facts the counting proofs derive from its vocabulary are kept in the cache
(:mod:`.vocab_cache`).
Truncation and padding settings stored in a tokenizer.json are switched off.

Special-token *text* inside the input (a literal ``"</s>"`` in a response) follows the
reference implementation of each format: converted SentencePiece models encode it as
ordinary characters, as sentencepiece does; tokenizer.json models match it as the special
token, as ``transformers`` does by default.

Known limit of the conversion: see :mod:`.sentencepiece_bpe` (models with a normalization
charsmap, user-defined or unused pieces).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tokenizers

from mosaic_it.budget.bos_eos import infer_special_tokens, special_tokens_from_config
from mosaic_it.budget.converted import cached_conversion, conversion_key
from mosaic_it.budget.gguf import GGUFError, build_backend, metadata_digest, read_metadata
from mosaic_it.budget.sentencepiece_bpe import (
    SentencePieceError,
    SentencePieceModel,
    parse_sentencepiece_model,
    sentencepiece_bpe_to_tokenizers,
)
from mosaic_it.errors import OptionError

__all__ = [
    "DEFAULT_TOKENIZER",
    "Tokenizer",
    "TokenizerError",
    "load_tokenizer",
]

DEFAULT_TOKENIZER = "default"

_BUNDLED_JSON = "data/tokenizer/tokenizer.json"  # the model converted, ready to load
# the oldest tokenizers that reads it (0.20 reads merges written as pairs), as pyproject.toml
TOKENIZERS_FOR_JSON = "0.20"
_BUNDLED_NAME = "mistral-7b-v0.1 (bundled)"
_BUNDLED_BOS, _BUNDLED_EOS = "<s>", "</s>"  # the model's bos_id and eos_id pieces
# what a tokenizer's content digest is taken from (see tokenizer_digest)
_JSON_FILE, _SERIALIZED, _CONVERSION = "tokenizer.json", "serialized", "converted"


class TokenizerError(OptionError):
    """A tokenizer could not be loaded; the message names the path (or name) and the problem."""


@dataclass(frozen=True)
class Tokenizer:
    """A token counter.  Immutable; safe to share between threads.

    ``bos_token``/``eos_token`` are the token strings a training pipeline puts at the start
    and end of a sequence (``None`` when the model has none or the tokenizer config says it
    is not added, e.g. Qwen2 has no BOS).  They are informational: :meth:`count` and
    :meth:`encode` never add them.

    ``digest`` names the backend's content: the SHA-256 of what :func:`load_tokenizer` built
    it from, with what fixes how it is built (see :func:`tokenizer_digest`). Facts derived from
    the vocabulary are kept in the cache under it (:mod:`.vocab_cache`); a tokenizer made in
    code around a backend has none, and its facts are derived every time.
    """

    name: str
    bos_token: str | None
    eos_token: str | None
    backend: tokenizers.Tokenizer = field(repr=False, compare=False)
    digest: str | None = field(default=None, repr=False, compare=False)

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, without any special tokens added."""
        return len(self.backend.encode(text, add_special_tokens=False))

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
    """The bundled model, read from its converted tokenizer.json (a test keeps that file equal
    to converting the model, which takes four times as long and is not shipped)."""
    try:
        text = resources.files("mosaic_it").joinpath(_BUNDLED_JSON).read_text(encoding="utf-8")
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as exc:  # missing, or from a tokenizers too old to read it
        raise TokenizerError(
            f"bundled tokenizer {_BUNDLED_JSON}: cannot be read by tokenizers "
            f"{tokenizers.__version__} ({' '.join(str(exc).split())[:200]}); mosaic-it needs "
            f"tokenizers>={TOKENIZERS_FOR_JSON}: pip install -U tokenizers"
        ) from None
    if hasattr(backend, "encode_special_tokens"):
        backend.encode_special_tokens = True  # a setting of the object, not of the file
    return Tokenizer(
        name=_BUNDLED_NAME,
        bos_token=_BUNDLED_BOS,
        eos_token=_BUNDLED_EOS,
        backend=backend,
        digest=tokenizer_digest(_JSON_FILE, text),
    )


def convert_bundled(model_file: str | os.PathLike[str]) -> Tokenizer:
    """The bundled SentencePiece model (``model_file``: ``tests/data/tokenizer/tokenizer.model.v1``
    in the repository, not in the wheel) converted to ``tokenizers``: what
    ``data/tokenizer/tokenizer.json`` holds (``scripts/build_tokenizer_json.py`` writes it)."""
    origin = os.fspath(model_file)
    try:
        data = Path(model_file).read_bytes()
    except OSError as exc:
        raise TokenizerError(f"{origin}: cannot read ({exc})") from exc
    try:
        model = parse_sentencepiece_model(data, origin=origin)
        backend = sentencepiece_bpe_to_tokenizers(model, origin=origin)
    except SentencePieceError as exc:
        raise TokenizerError(str(exc)) from exc
    return Tokenizer(
        name=_BUNDLED_NAME,
        bos_token=model.special_piece(model.bos_id),
        eos_token=model.special_piece(model.eos_id),
        backend=backend,
        digest=serialized_digest(backend),
    )


def tokenizer_digest(kind: str, source: str) -> str:
    """:attr:`Tokenizer.digest`: the SHA-256 of what a backend was built from, where that
    alone fixes what is built (with the ``tokenizers`` version, which the users of the digest
    add): the text of a ``tokenizer.json`` (``kind`` "tokenizer.json"), the key of a
    conversion that has a version of its own ("converted", :mod:`.converted`), or else the
    backend's own serialization ("serialized", :func:`serialized_digest`)."""
    return hashlib.sha256(f"{kind}\0{source}".encode()).hexdigest()


def serialized_digest(backend: tokenizers.Tokenizer) -> str:
    """The content digest of a backend built in this process by a conversion without a
    version of its own (a SentencePiece model's): its serialization (20 ms for 32,000 pieces;
    a GGUF file's conversion has a key instead, its serialization costs 0.4 s for Gemma 3)."""
    return tokenizer_digest(_SERIALIZED, backend.to_str())


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
    backend, digest = _cached_tokenizer_json(_file_key(path))
    bos, eos = special_tokens_from_config(config, *infer_special_tokens(backend))
    return Tokenizer(
        name=name or str(path), bos_token=bos, eos_token=eos, backend=backend, digest=digest
    )


@functools.lru_cache(maxsize=16)
def _cached_tokenizer_json(key: tuple[str, int, int]) -> tuple[tokenizers.Tokenizer, str]:
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
    return _neutralise(backend), tokenizer_digest(_JSON_FILE, text)


def _load_sentencepiece(path: Path, config: dict | None, name: str | None = None) -> Tokenizer:
    model, backend, digest = _cached_sentencepiece(_file_key(path))
    # The model itself records its BOS/EOS (trainer_spec.bos_id/eos_id, -1 = none).
    bos, eos = special_tokens_from_config(
        config, model.special_piece(model.bos_id), model.special_piece(model.eos_id)
    )
    return Tokenizer(
        name=name or str(path), bos_token=bos, eos_token=eos, backend=backend, digest=digest
    )


@functools.lru_cache(maxsize=8)
def _cached_sentencepiece(
    key: tuple[str, int, int],
) -> tuple[SentencePieceModel, tokenizers.Tokenizer, str]:
    path = key[0]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        model = parse_sentencepiece_model(data, origin=path)
        backend = sentencepiece_bpe_to_tokenizers(model, origin=path)
    except SentencePieceError as exc:
        raise TokenizerError(str(exc)) from exc
    return model, backend, serialized_digest(backend)


def _load_gguf(path: Path) -> Tokenizer:
    (backend, bos, eos), digest = _cached_gguf(_file_key(path))
    return Tokenizer(name=str(path), bos_token=bos, eos_token=eos, backend=backend, digest=digest)


@functools.lru_cache(maxsize=4)
def _cached_gguf(
    key: tuple[str, int, int],
) -> tuple[tuple[tokenizers.Tokenizer, str | None, str | None], str]:
    path = key[0]
    try:
        source = metadata_digest(path)
        built = cached_conversion(
            Path(path).stem, source, lambda: build_backend(read_metadata(path))
        )
        return built, tokenizer_digest(_CONVERSION, conversion_key(source))
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (GGUFError, SentencePieceError) as exc:
        raise TokenizerError(f"{path}: {exc}") from exc


def _load_hub(name: str) -> Tokenizer:
    backend, digest = _cached_hub(name)
    bos, eos = special_tokens_from_config(_hub_config(name), *infer_special_tokens(backend))
    return Tokenizer(name=name, bos_token=bos, eos_token=eos, backend=backend, digest=digest)


@functools.lru_cache(maxsize=8)
def _cached_hub(name: str) -> tuple[tokenizers.Tokenizer, str]:
    try:
        backend = _from_pretrained(name)
    except TokenizerError:
        raise
    except Exception as exc:  # network errors, 404s, gated repos: all plain Exception
        raise TokenizerError(
            f"{name}: not a local file or directory, and loading it from the Hugging Face Hub "
            f"failed ({exc}). Check the path, or the network connection and repository id."
        ) from exc
    backend = _neutralise(backend)
    return backend, serialized_digest(backend)


def _from_pretrained(name: str) -> tokenizers.Tokenizer:
    """Fetch tokenizer.json from the Hub (a seam, so tests can simulate being offline)."""
    from mosaic_it.hub import hub_unreachable

    offline = hub_unreachable()
    if offline:
        raise TokenizerError(f"{name}: not a local file or directory; as a hub name: {offline}")
    return tokenizers.Tokenizer.from_pretrained(name)


def _hub_config(name: str) -> dict | None:
    """tokenizer_config.json of a Hub repo, if huggingface_hub is installed and it exists."""
    try:
        from huggingface_hub import hf_hub_download  # installed with tokenizers, which needs it
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
