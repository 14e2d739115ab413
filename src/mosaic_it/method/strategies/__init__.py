"""The Mosaic-IT strategies. Each module of this package holds one strategy and registers it
(see :mod:`.base`): how a rule is chosen and phrased for a group of instructions, which answers
(in which order) make it true, and what its section of the rule pack holds. Every module here
is imported with the package, so a new strategy is its module and its rule-pack section.

* :mod:`.format`  - a layout only (number labels, tags, generic or no meta-instruction; see
  :mod:`mosaic_it.method.layout`), every instruction answered in order.
* :mod:`.permute` - answer in another order (FIX, REVERSE, ALPHA, ... EVEN_ODD).
* :mod:`.maskout` - leave some instructions unanswered (FIX, WORD_LONG, WORD_SHORT, ODD, EVEN).
"""

import importlib
import pkgutil

# the built-in strategies, in the order a sample's strategy is drawn from (part of what a seed
# reproduces: never reorder); they register first, in this order, then any other module here
STRATEGIES = ("format", "permute", "maskout")

for _name in (*STRATEGIES, *sorted(m.name for m in pkgutil.iter_modules(__path__))):
    if _name != "base":
        importlib.import_module(f"{__name__}.{_name}")
