"""Spool: where a message goes when the journal cannot take it (issue: spool)."""

from __future__ import annotations

import os
from typing import Callable

from .config import Config
from .errors import EX_OK


def list_queue(cfg: Config, out: Callable[[str], None]) -> int:
    """mailq: the spooled messages, or "Mail queue is empty"."""
    try:
        names = [n for n in os.listdir(cfg.spool) if not n.startswith(".")]
    except OSError:
        names = []
    if not names:
        out("Mail queue is empty")
    else:
        out(f"-- {len(names)} messages in the spool {cfg.spool}")
    return EX_OK


def flush(cfg: Config, out: Callable[[str], None]) -> int:
    """-q: nothing to do until the spool exists."""
    return EX_OK
