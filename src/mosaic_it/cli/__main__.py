"""``python -m mosaic_it.cli``: the command line."""

import sys

from mosaic_it.cli.main import main

sys.exit(main())
