"""mosaic-it: Mosaic-IT instruction-tuning augmentation (compositional, teacher-free)."""

from mosaic_it.budget.tokenizer import Tokenizer, TokenizerError, load_tokenizer
from mosaic_it.engine.mosaicker import MosaicConfig, Mosaicker, RunSummary, mosaic
from mosaic_it.io.files import InputError, read_records, write_records
from mosaic_it.method.rulepack import RulePack, RulePackError, load_rule_pack
from mosaic_it.records import MosaicSpec, Numbering, Record, Sample, Tags
from mosaic_it.verifier.checks import Check, SpecError, Verdict, verify

__version__ = "0.1.0"

__all__ = [
    "Check",
    "InputError",
    "MosaicConfig",
    "MosaicSpec",
    "Mosaicker",
    "Numbering",
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
