"""``python -m mosaic_it.cli``: the command line."""

from mosaic_it.cli import entry

entry()
