"""Print a wheel's size and what it holds beyond Python modules, for CI's log.

Whatever the wheel ships is installed by every user: a data file that creeps in shows here.
"""

import sys
import zipfile
from pathlib import Path

wheel = Path(sys.argv[1])
with zipfile.ZipFile(wheel) as archive:
    entries = archive.infolist()
print(f"{wheel.name}: {wheel.stat().st_size:,} bytes, {len(entries)} files")
for entry in entries:
    if not entry.filename.endswith(".py") and ".dist-info/" not in entry.filename:
        print(f"  {entry.file_size:>10,}  {entry.filename}")
