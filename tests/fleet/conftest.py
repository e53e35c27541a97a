"""Fixtures for the fleet tests; the helpers are in kit/fleet.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import fleet, harness

NEEDS = (fleet.REMOTE, fleet.UPLOAD)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[fleet.Host]]:
    """Three hosts (host1..host3), each a journald with its own hostname, machine id and boot id."""
    missing = [p for p in NEEDS if not os.path.exists(p)]
    if missing:
        pytest.skip(f"needs systemd-journal-remote ({', '.join(missing)})")
    assert harness.in_private_namespace()
    started: list[fleet.Host] = []
    try:
        for n in (1, 2, 3):
            started.append(fleet.Host(f"host{n}", tmp_path).start())
        yield started
    finally:
        for h in started:
            h.stop()
            shutil.rmtree(h.journal_dir, ignore_errors=True)
