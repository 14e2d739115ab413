"""Print the README block marked ``<!-- run by .ci/run: NAME -->``, for .ci/run to execute.

CI runs README's own commands, as written, rather than a copy of them that could drift.
"""

import re
import sys
from pathlib import Path

name = sys.argv[1]
text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
marker = rf"<!-- run by \.ci/run: {re.escape(name)} -->"
match = re.search(marker + r"\s*\n```bash\n(.*?)\n```", text, re.S)
if match is None:
    sys.exit(f"README.md has no block marked 'run by .ci/run: {name}'")
print(match.group(1))
