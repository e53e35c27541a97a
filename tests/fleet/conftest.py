"""Fixtures for the fleet tests; the helpers are in fleetkit.py (``conftest`` is tests/conftest.py's name)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fleetkit  # noqa: E402
import harness  # noqa: E402

NEEDS = (fleetkit.REMOTE, fleetkit.UPLOAD)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[fleetkit.Host]]:
    """Three hosts (host1..host3), each a journald with its own hostname, machine id and boot id."""
    missing = [p for p in NEEDS if not os.path.exists(p)]
    if missing:
        pytest.skip(f"needs systemd-journal-remote ({', '.join(missing)})")
    assert harness.in_private_namespace()
    started: list[fleetkit.Host] = []
    try:
        for n in (1, 2, 3):
            started.append(fleetkit.Host(f"host{n}", tmp_path).start())
        yield started
    finally:
        for h in started:
            h.stop()
            shutil.rmtree(h.journal_dir, ignore_errors=True)
