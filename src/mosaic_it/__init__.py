"""mosaic-it: Mosaic-IT instruction-tuning augmentation (compositional, teacher-free)."""

from .api import MosaicConfig, Mosaicker, RunSummary, mosaic
from .io import InputError, read_records, write_records
from .records import MosaicSpec, Numbering, Record, Sample, Tags
from .rulepack import RulePack, RulePackError, load_rule_pack
from .tokenizer import Tokenizer, TokenizerError, load_tokenizer
from .verify import Check, SpecError, Verdict, verify

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
