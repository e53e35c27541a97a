"""The doctests of the package's modules (the pure helpers document themselves)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["config", "options", "message", "headers", "record", "struct", "query", "render"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"journal_sendmail.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
