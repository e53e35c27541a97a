"""``import benchpath`` first: a bench script then imports the source tree's package
(src/) and the tests' kit (tests/kit), which pytest has on its pythonpath (setup.cfg) and
a script started by hand does not (it has its own directory, bench/, and this module)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT / "src"), str(ROOT / "tests")) if p not in sys.path]
