"""mosaic-it: Mosaic-IT instruction-tuning augmentation (compositional, teacher-free).

The names below are imported when first used (PEP 562), so that ``import mosaic_it`` is
cheap: the command line takes over the signals that end a run (:mod:`mosaic_it.signals`)
before the heavy modules load."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosaic_it.budget.tokenizer import Tokenizer, TokenizerError, load_tokenizer
    from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker, RunSummary, mosaic
    from mosaic_it.errors import EnvironmentFault, InternalError, MosaicItError, OptionError
    from mosaic_it.io.files import InputError, read_records, write_records
    from mosaic_it.method.rulepack import RulePack, RulePackError, load_rule_pack
    from mosaic_it.records import MosaicSpec, Numbering, Record, Sample, Tags
    from mosaic_it.verifier.checks import Check, SpecError, Verdict, verify

__version__ = "0.1.0"

_HOMES = {
    "mosaic_it.budget.tokenizer": ("Tokenizer", "TokenizerError", "load_tokenizer"),
    "mosaic_it.engine.mosaicker": ("MosaicConfig", "Mosaicker", "RunSummary", "mosaic"),
    "mosaic_it.errors": ("EnvironmentFault", "InternalError", "MosaicItError", "OptionError"),
    "mosaic_it.io.files": ("InputError", "read_records", "write_records"),
    "mosaic_it.method.rulepack": ("RulePack", "RulePackError", "load_rule_pack"),
    "mosaic_it.records": ("MosaicSpec", "Numbering", "Record", "Sample", "Tags"),
    "mosaic_it.verifier.checks": ("Check", "SpecError", "Verdict", "verify"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Check",
    "EnvironmentFault",
    "InputError",
    "InternalError",
    "MosaicConfig",
    "MosaicItError",
    "MosaicSpec",
    "Mosaicker",
    "Numbering",
    "OptionError",
    "Record",
    "RulePack",
    "RulePackError",
    "RunSummary",
    "Sample",
    "SpecError",
    "Tags",
    "Tokenizer",
    "TokenizerError",
    "Verdict",
    "load_rule_pack",
    "load_tokenizer",
    "mosaic",
    "read_records",
    "verify",
    "write_records",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mosaic_it' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME_OF])
