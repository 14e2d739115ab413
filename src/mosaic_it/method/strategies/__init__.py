"""The Mosaic-IT strategies. Each module holds one strategy's rules: how a rule is chosen and
phrased for a group of instructions, and which answers (in which order) make it true.

* :mod:`.format`  - the layout every sample gets: number labels, tags, generic or no
meta-instruction.
* :mod:`.permute` - answer in another order (FIX, REVERSE, ALPHA, ... EVEN_ODD).
* :mod:`.maskout` - leave some instructions unanswered (FIX, WORD_LONG, WORD_SHORT, ODD, EVEN).
"""

from mosaic_it.method.strategies.base import Item, RuleChoice

STRATEGIES = ("format", "permute", "maskout")

__all__ = ["Item", "RuleChoice", "STRATEGIES"]
