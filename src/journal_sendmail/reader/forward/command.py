"""``journal-mail forward``: the command, from argparse's namespace to an exit code."""

from __future__ import annotations

import argparse
import io as _io
from collections.abc import Callable
from typing import Any

from ...errors import EX_OK, EX_TEMPFAIL
from ...printable import printable
from ..output import Io
from ..source import Source
from . import config, dryrun, service, state
from .events import Events


def run(args: argparse.Namespace, io: Io, open_journal: Callable[[argparse.Namespace, Io], Any],
        source_of: Callable[[argparse.Namespace], Source]) -> int:
    """``open_journal`` and ``source_of`` are the reader's own (commands), passed in so
    that imports run one way."""
    path = args.config or config.DEFAULT_PATH
    cfg = config.load(path)
    src = source_of(args)
    if args.dry_run:
        reader = open_journal(args, io)
        out = io.out
        text = _io.StringIO()
        code = dryrun.dry_run(cfg, src, reader, text)
        lines = text.getvalue().split("\n")  # a forged MAIL_ID or host: through the printable filter
        out.write("\n".join(printable(line, one_line=True) for line in lines).encode("utf-8", "replace"))
        out.flush()
        return code
    lock = state.lock(cfg.state_dir)  # noqa: F841 - held until the process ends
    reader = open_journal(args, io)
    log = Events(echo=args.once and not args.quiet)
    if not (args.once or args.digest_now is not None):
        return service.follow(lambda: config.load(path), src, log, reader)
    fw = service.Forwarder(cfg, src, log)
    try:
        p = fw.run_pass(reader, force=True)
        fw.digests_due(args.digest_now, p, retry_now=True)
    finally:
        fw.close()
    if p.waiting:
        if not args.quiet:
            io.say(f"still waiting for a retry: {', '.join(sorted(p.waiting))}")
        return EX_TEMPFAIL
    return EX_OK
