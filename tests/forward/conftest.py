"""Fixtures for the forwarder; the helpers are in forwardkit.py."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "reader"))
import forwardkit


@pytest.fixture
def smarthost() -> Iterator[forwardkit.Smarthost]:
    s = forwardkit.Smarthost().start()
    yield s
    s.stop()


@pytest.fixture
def webhook() -> Iterator[forwardkit.Webhook]:
    w = forwardkit.Webhook()
    yield w
    w.stop()


@pytest.fixture
def config(tmp_path: Path) -> Callable[[str], Path]:
    """Write forward.toml (state under tmp_path) and return its path."""

    def make(text: str) -> Path:
        p = tmp_path / "forward.toml"
        p.write_text(f'state_dir = "{tmp_path / "state"}"\n' + text)
        return p

    return make
