"""Fixtures for the forwarder; the helpers are in kit/forward.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit.forward import Smarthost, Webhook


@pytest.fixture
def smarthost() -> Iterator[Smarthost]:
    s = Smarthost().start()
    yield s
    s.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
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
