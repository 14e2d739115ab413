#!/usr/bin/env python3
"""Write src/mosaic_it/data/tokenizer/tokenizer.json: the bundled SentencePiece model converted.

The package loads that file instead of converting the model at every start (a quarter of the
time); tests/test_tokenizer.py checks that it still equals the conversion. Run this after
changing the model file or the conversion.
"""

from pathlib import Path

from mosaic_it.budget.tokenizer import convert_bundled

TARGET = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "mosaic_it"
    / "data"
    / "tokenizer"
    / "tokenizer.json"
)

if __name__ == "__main__":
    text = convert_bundled().backend.to_str()
    TARGET.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {TARGET} ({len(text):,} characters)")
