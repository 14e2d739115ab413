"""The Mosaic-IT strategies. Each module holds one strategy and registers it (see
:mod:`.base`): how a rule is chosen and phrased for a group of instructions, and which answers
(in which order) make it true.

* :mod:`.format`  - a layout only (number labels, tags, generic or no meta-instruction; see
  :mod:`mosaic_it.method.layout`), every instruction answered in order.
* :mod:`.permute` - answer in another order (FIX, REVERSE, ALPHA, ... EVEN_ODD).
* :mod:`.maskout` - leave some instructions unanswered (FIX, WORD_LONG, WORD_SHORT, ODD, EVEN).
"""

# importing a strategy registers it; they register in this order
# isort: off
from mosaic_it.method.strategies import format  # noqa: F401
from mosaic_it.method.strategies import permute  # noqa: F401
from mosaic_it.method.strategies import maskout  # noqa: F401

# isort: on
from mosaic_it.method.strategies.base import (
    Item,
    RuleChoice,
    Strategy,
    find_strategy,
    register,
    registered,
)

# the built-in strategies, in the order a sample's strategy is drawn from (part of what a seed
# reproduces: never reorder)
STRATEGIES = ("format", "permute", "maskout")

__all__ = [
    "STRATEGIES",
    "Item",
    "RuleChoice",
    "Strategy",
    "find_strategy",
    "register",
    "registered",
]
