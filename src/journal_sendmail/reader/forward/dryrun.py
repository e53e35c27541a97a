"""Dry run: every mail of the source, what the rules decide and what would go out; nothing sent nor written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import IO

from ..errors import DamagedMail
from ..render import printable, rfc3339
from ..source import Journal, Source, open_reader
from . import compose, silence, source
from .config import Config
from .rules import Decision, Mail, decide
from .service import Lazy


def dry_run(cfg: Config, src: Source, reader: Journal, out: IO[str]) -> int:
    now = time.time()
    n = 0
    silences = silence.Silences(cfg.state_dir)
    for s in silences.all:
        if s.active(now):
            out.write(printable(f"silence {s.id} until {rfc3339(int(s.end * 1_000_000))}: {s.describe()}"
                                f"{' (' + s.comment + ')' if s.comment else ''}", one_line=True) + "\n")
    for host in source.hosts(reader):
        for m in source.scan(reader, host, None, lambda why: None):
            e = m.entry
            lazy = Lazy(e, lambda: open_reader(src))
            dec = decide(cfg.rules, m, lazy.body)
            n += 1
            out.write(printable(f"{rfc3339(e.realtime)} {e.hostname} {e.mail_id} {compose.clean(e.subject)!r}",
                                one_line=True) + "\n")
            for line in explain(cfg, m, dec, lazy, now, silences):
                out.write(f"    {printable(line, one_line=True)}\n")
    out.write(f"{n} mail(s) looked at; nothing sent (dry run)\n")
    return 0


def explain(cfg: Config, m: Mail, dec: Decision, lazy: Lazy, now: float,
            silences: silence.Silences | None = None) -> Iterator[str]:
    if dec.why:
        yield f"not forwarded: {dec.why}"
        return
    if not dec.rules:
        yield "no rule matched: stays in the journal only"
        return
    yield "rule" + ("s " if len(dec.rules) > 1 else " ") + ", ".join(repr(r) for r in dec.rules) + " decided"
    if dec.dropped and not dec.route and not dec.digests:
        yield "dropped: stays in the journal only"
    s = silences.match(m, lazy.body) if silences is not None and dec.route else None
    rule = next((r for r in cfg.rules if r.name == dec.rules[-1]), None)
    if s is not None:
        yield f"silenced by {s.id} ({s.describe()}): sent to no destination"
    elif rule is not None and rule.repeat_interval is not None:
        yield (f"repeats: one mail per {rule.repeat_interval:.0f} s per group ({', '.join(rule.group_by)}), "
               "then a count")
    for name in dec.route:
        d = cfg.destinations[name]
        try:
            raw = lazy.raw
        except DamagedMail as err:
            yield f"-> {name}: would give up: {err.reason}"
            continue
        o = compose.outgoing(d, m.entry, raw, dec.rules[-1], now)
        if d.type == "smtp":
            yield (f"-> {name}: {d.mode} via {d.url} to {', '.join(d.to)}, Subject: {o.summary!r}, "
                   f"Message-ID: {o.message_id}, {len(o.data)} bytes")
        else:
            yield f"-> {name}: POST {d.url} ({d.format}, {len(o.data)} bytes), {o.summary!r}"
    for g in dec.digests:
        yield f"-> digest {g} (to {', '.join(cfg.digests[g].to)})"
