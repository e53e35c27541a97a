"""Fixtures for journal-mail; the helpers are in reader.py (``conftest`` is tests/conftest.py's name)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from kit import harness, reader


@pytest.fixture
def jm() -> Callable[..., CompletedProcess[bytes]]:
    """Run journal-mail (the source tree, or the installed one) to completion."""
    return reader.run_jm


@pytest.fixture
def persistent_journald(journald: harness.Journald) -> Iterator[harness.Journald]:
    """The ``journald`` fixture, flushed to /var/log/journal (where per-user files live)."""
    reader.flush_to_persistent(journald)
    yield journald


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[reader.Exporter]:
    e = reader.Exporter(tmp_path)
    yield e
    if e.proc is not None:
        e.proc.kill()
        e.proc.wait()
