"""``journal-mail forward``: the command, from its options to an exit code."""

from __future__ import annotations

import io as _io

from ...errors import EX_OK, EX_TEMPFAIL
from ...printable import printable
from ..output import Io
from ..source import Source, open_journal
from . import config, dryrun, service, state
from .events import Events


def run(io: Io, src: Source, path: str | None, once: bool = False, dry_run: bool = False,
        digest_now: str | None = None, quiet: bool = False) -> int:
    path = path or config.DEFAULT_PATH
    cfg = config.load(path)
    say = None if quiet else io.say
    if dry_run:
        reader = open_journal(src, say)
        out = io.out
        text = _io.StringIO()
        code = dryrun.dry_run(cfg, src, reader, text)
        lines = text.getvalue().split("\n")  # a forged MAIL_ID or host: through the printable filter
        out.write("\n".join(printable(line, one_line=True) for line in lines).encode("utf-8", "replace"))
        out.flush()
        return code
    lock = state.lock(cfg.state_dir)  # noqa: F841 - held until the process ends
    reader = open_journal(src, say)
    log = Events(echo=once and not quiet)
    if not (once or digest_now is not None):
        return service.follow(lambda: config.load(path), src, log, reader)
    fw = service.Forwarder(cfg, src, log)
    try:
        p = fw.run_pass(reader, force=True)
        fw.digests_due(digest_now, p, retry_now=True)
    finally:
        fw.close()
    if p.waiting:
        if not quiet:
            io.say(f"still waiting for a retry: {', '.join(sorted(p.waiting))}")
        return EX_TEMPFAIL
    return EX_OK


def policy(io: Io, path: str | None, what: str, as_json: bool = False, match: tuple[str, ...] = (),
           duration: str = "", comment: str = "", sid: str = "") -> int:
    """``forward status`` (``what``: "status") and ``forward silence add|list|expire``."""
    from . import status

    return status.command(io, config.load(path or config.DEFAULT_PATH), what, as_json, match, duration, comment, sid)
