"""The doctests of the package's modules (the pure helpers document themselves).

The modules are found in the tree, so a new or moved module is never left out.
"""

from __future__ import annotations

import doctest
import importlib

import pytest
from kit.support import SRC

MODULES = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts)
    for p in (SRC / "journal_sendmail").rglob("*.py")
    if p.name != "__main__.py"
)
WITH_EXAMPLES = {m for m in MODULES if ">>> " in (SRC / (m.replace(".", "/") + ".py")).read_text()}


def test_the_tree_has_modules_with_examples() -> None:
    assert "journal_sendmail.reader.render" in MODULES and len(WITH_EXAMPLES) >= 8, WITH_EXAMPLES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or name not in WITH_EXAMPLES
