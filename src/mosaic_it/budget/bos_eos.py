"""Which tokens a tokenizer's BOS and EOS are: as its ``tokenizer_config.json`` says, else the
first of the known spellings registered as special added tokens (:mod:`.tokenizer` loads it).
"""

from __future__ import annotations

import tokenizers

# Special-token spellings tried, in order, when no tokenizer_config.json says which
# tokens are BOS/EOS.  Only tokens registered as *special* added tokens count.
#   <s>/</s>                      Llama-1/2, Mistral, Mixtral (SentencePiece family)
#   <|begin_of_text|>/<|end_of_text|>  Llama-3 base; <|eot_id|> is Llama-3-Instruct's end of turn
#   <bos>/<eos>                   Gemma
#   <|endoftext|>                 GPT-2 / Qwen2 base (Qwen2 has no BOS at all);
#   <|im_end|>                    ChatML end of turn (Qwen2-Instruct), last resort
_BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<bos>")
_EOS_CANDIDATES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>")


def _token_content(value: object) -> str | None:
    """A token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"] or None
    return None


def infer_special_tokens(backend: tokenizers.Tokenizer) -> tuple[str | None, str | None]:
    """(bos, eos): the first of the known spellings registered as special added tokens."""
    special = {tok.content for tok in backend.get_added_tokens_decoder().values() if tok.special}
    bos = next((t for t in _BOS_CANDIDATES if t in special), None)
    eos = next((t for t in _EOS_CANDIDATES if t in special), None)
    return bos, eos


def special_tokens_from_config(
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
