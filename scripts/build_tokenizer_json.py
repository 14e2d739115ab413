#!/usr/bin/env python3
"""Write src/mosaic_it/data/tokenizer/tokenizer.json: the bundled SentencePiece model converted.

The package ships and loads that file alone (reading it takes a quarter of the time converting
takes); the model file, tests/data/tokenizer/tokenizer.model.v1, stays in the repository, and
tests/budget/test_tokenizer.py checks that the JSON still equals its conversion. Run this after
changing the model file or the conversion.
"""

from pathlib import Path

from mosaic_it.budget.tokenizer import convert_bundled

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "data" / "tokenizer" / "tokenizer.model.v1"
TARGET = ROOT / "src" / "mosaic_it" / "data" / "tokenizer" / "tokenizer.json"

if __name__ == "__main__":
    text = convert_bundled(MODEL).backend.to_str()
    TARGET.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {TARGET} ({len(text):,} characters)")
