"""Small helpers of model loading: precision choice, file digests, error text."""

from __future__ import annotations

import hashlib

import pytest

from mosaic_it.apps.gguf_model import file_sha256
from mosaic_it.apps.model_source import ModelError, package_missing, resolve_model, short_error
from mosaic_it.apps.models import use_bf16

from ..conftest import needs


def test_file_digest_reads_in_blocks(tmp_path):
    data = bytes(range(256)) * 9000  # more than one 1 MiB block
    path = tmp_path / "w.gguf"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_bf16_only_when_asked_or_on_a_gpu_that_has_it():
    torch = needs("torch")
    assert use_bf16("bf16", torch) is True
    assert use_bf16("fp32", torch) is False
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert use_bf16("auto", torch) is gpu_bf16


def test_error_text_is_one_bounded_line():
    assert short_error(ValueError("a\n  b\tc")) == "a b c"
    assert short_error(KeyError()) == "KeyError"
    long = short_error(ValueError("x" * 500), limit=50)
    assert len(long) == 50 and long.endswith("...")
    assert package_missing("json") is False
    assert package_missing("no_such_package_here") is True


def test_a_gguf_file_resolves_and_other_files_are_refused(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    source = resolve_model(str(tmp_path / "m.gguf"))
    assert (source.kind, source.path, source.gguf_file) == ("gguf", tmp_path, "m.gguf")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match="not a .gguf model"):
        resolve_model(str(tmp_path / "notes.txt"))
