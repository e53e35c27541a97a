"""Service: the forwarder's passes over the journal, for ``--once``, ``--dry-run`` and the following service.

Every destination and every digest is a consumer with its own cursors and
state: one that fails holds back nobody else, and never makes another send
twice.  A consumer reads each host's mail after its cursor, asks the rules,
and moves its cursor past a mail only once the mail is done (delivered,
given up, collected, or not for it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.header import Header
from typing import IO, Any

from ...body import searchable
from ...errors import DamagedMail
from ..assemble import assemble
from ..entry import MailEntry
from ..output import Signals
from ..query import Source, open_reader
from ..render import rfc3339
from ..timespec import US
from . import compose, digest, source
from .config import Config, Destination, Digest
from .events import Events
from .rules import Decision, Mail, decide
from .state import State
from .transport import DeliveryError, PermanentFailure, Transport, read_password, transport

BACKOFF_FIRST = 30.0  # seconds; doubled at each attempt
BACKOFF_MAX = 3600.0
WAKE = 1.0  # seconds: the longest the following service sleeps
SAVE_EVERY = 500  # entries read without anything to do between two state writes


def mail_key(e: MailEntry) -> str:
    """What makes two entries one mail: its MAIL_ID and its sender (journald's _UID, _HOSTNAME, _BOOT_ID)."""
    return f"{e.mail_id} {e.uid} {e.hostname} {e.boot_id}"


class Lazy:
    """The raw bytes and readable body of one mail, assembled once and only when asked."""

    def __init__(self, e: MailEntry, opener: Callable[[], Any]) -> None:
        self.e = e
        self.opener = opener
        self._raw: bytes | None = None
        self._body: str | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = assemble(self.e, self.opener)
        return self._raw

    def body(self) -> str:
        if self._body is None:
            try:
                self._body = searchable(self.raw(), self.e.text)
            except DamagedMail:
                self._body = self.e.text or ""
        return self._body


@dataclass
class Pass:
    """What one pass found: the consumers that wait for a retry."""

    waiting: set[str] = field(default_factory=set)
    stop: Callable[[], bool] = lambda: False


class Forwarder:
    def __init__(self, cfg: Config, src: Source, log: Events, now: Callable[[], float] = time.time,
                 make_transport: Callable[[Destination, str | None], Transport] = transport) -> None:
        self.cfg, self.src, self.log, self.now = cfg, src, log, now
        self.passwords = {n: read_password(d.password_file) for n, d in cfg.destinations.items() if d.password_file}
        self.make_transport = make_transport
        self.states = {("dest", n): State(cfg.state_dir, "dest", n) for n in cfg.destinations}
        self.states |= {("digest", n): State(cfg.state_dir, "digest", n) for n in cfg.digests}
        self.buckets = {n: digest.Bucket(self.states[("digest", n)].dir) for n in cfg.digests}
        self.transports: dict[str, Transport] = {}

    def opener(self) -> Any:
        return open_reader(self.src)

    def close(self) -> None:
        self._close_transports()
        for st in self.states.values():
            st.close()

    def _close_transports(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports = {}

    def _transport(self, d: Destination) -> Transport:
        if d.name not in self.transports:
            self.transports[d.name] = self.make_transport(d, self.passwords.get(d.name))
        return self.transports[d.name]

    # -- a pass -----------------------------------------------------------------------

    def initialize(self, reader: Any) -> None:
        """First run of a consumer with start = "now": every host's cursor at its newest mail."""
        hosts = source.hosts(reader)
        for st in self.states.values():
            if st.initialized:
                continue
            if self.cfg.start == "now":
                for h in hosts:
                    c = source.last_cursor(reader, h)
                    if c:
                        st.set_cursor(h, c)
            st.data["initialized"] = True
            st.dirty = True
            st.save(durable=True)

    def run_pass(self, reader: Any, force: bool, stop: Callable[[], bool] = lambda: False) -> Pass:
        """Every consumer reads what is new for it; ``force``: retry now whatever the backoff says."""
        self.initialize(reader)
        p = Pass(stop=stop)
        hosts = source.hosts(reader)
        try:
            for name in self.cfg.digests:
                self._consume(reader, hosts, ("digest", name), p, force)
            for name in self.cfg.destinations:
                self._consume(reader, hosts, ("dest", name), p, force)
        finally:
            self._close_transports()
            for st in self.states.values():
                st.save(durable=True)
        return p

    def _consume(self, reader: Any, hosts: list[str], which: tuple[str, str], p: Pass, force: bool) -> None:
        st = self.states[which]
        for host in hosts:
            idle = 0

            def gap(why: str, host: str = host) -> None:
                self.log("gap", f"{which[0]} {which[1]}: {why}", destination=which[1], host=host)

            for m in source.scan(reader, host, st.cursor(host), gap):
                if p.stop():
                    return
                go_on = self._one(which, st, m, p, force)
                if not go_on:
                    break
                st.set_cursor(host, m.entry.cursor)
                idle += 1
                if st.dirty and idle >= SAVE_EVERY:
                    st.save()
                    idle = 0
            st.save()
            if " ".join(which) in p.waiting:
                return  # down: the other hosts' mail waits too, without knocking on a closed door

    def _one(self, which: tuple[str, str], st: State, m: Mail, p: Pass, force: bool) -> bool:
        """Handle one mail for one consumer; False: stop here (retry later)."""
        e = m.entry
        key = mail_key(e)
        if key in st.delivered:
            return True
        lazy = Lazy(e, self.opener)
        dec = decide(self.cfg.rules, m, lazy.body)
        kind, name = which
        if kind == "digest":
            if name in dec.digests:
                self.buckets[name].add(digest.item(m, key, self.cfg.digests[name].group_by, lazy.body()))
                st.done(key)
                st.dirty = True
            return True
        if name not in dec.route:
            if st.data["retry"].pop(key, None) is not None:  # the rules changed while it waited
                st.dirty = True
            return True
        return self._deliver(self.cfg.destinations[name], st, m, lazy, dec, key, p, force)

    def _deliver(self, d: Destination, st: State, m: Mail, lazy: Lazy, dec: Decision, key: str, p: Pass,
                 force: bool) -> bool:
        e = m.entry
        now = self.now()
        fields = {"destination": d.name, "mail_id": e.mail_id, "rule": dec.rules[-1], "host": e.hostname}
        if d.rate_limit is not None:
            window = [t for t in st.data.get("window", []) if t > now - d.rate_limit.period]
            if len(window) >= d.rate_limit.count:
                if d.overflow is None:
                    p.waiting.add(f"dest {d.name}")
                    return False
                g = self.cfg.digests[d.overflow]
                self.buckets[d.overflow].add(digest.item(m, key, g.group_by, lazy.body(),
                                                         note=f"over {d.name}'s rate limit"))
                st.done(key)
                self.log("held", f"mail {e.mail_id} over the rate limit of {d.name}: into digest {d.overflow}",
                         **fields)
                return True
            st.data["window"] = window
        retry = st.data["retry"].get(key)
        if retry and not force and now < retry["next"]:
            p.waiting.add(f"dest {d.name}")
            return False
        try:
            raw = lazy.raw()
            out = outgoing(d, e, raw, m.unit, dec.rules[-1], now)
            answer = self._transport(d).send(out)
        except DamagedMail as err:
            self._give_up(d, st, key, f"mail {e.mail_id} not forwarded to {d.name}: {err.reason}", fields)
            return True
        except DeliveryError as err:
            self.transports.pop(d.name, None)
            first = retry["first"] if retry else now
            attempts = (retry["attempts"] if retry else 0) + 1
            if err.permanent or now - first >= d.max_age:
                why = "refused" if isinstance(err, PermanentFailure) else f"still failing after {attempts} attempts"
                self._give_up(d, st, key, f"mail {e.mail_id} to {d.name} given up ({why}): {err.reason}", fields)
                return True
            delay = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
            st.data["retry"][key] = {"first": first, "attempts": attempts, "next": now + delay}
            st.dirty = True
            st.save()
            self.log("retried", f"mail {e.mail_id} to {d.name} failed ({err.reason}); attempt {attempts}, next "
                     f"in {delay:.0f} s", reason=err.reason, **fields)
            p.waiting.add(f"dest {d.name}")
            return False
        st.done(key)
        if d.rate_limit is not None:
            st.data["window"].append(now)
        st.dirty = True
        self.log("delivered", f"mail {e.mail_id} forwarded to {d.name} ({out.summary}): {answer}",
                 message_id=out.message_id, **fields)
        return True

    def _give_up(self, d: Destination, st: State, key: str, why: str, fields: dict[str, str]) -> None:
        st.done(key)
        st.dirty = True
        self.log("gave-up", why, **fields)


    # -- digests ----------------------------------------------------------------------

    def digests_due(self, force: str | None, p: Pass, retry_now: bool) -> None:
        """Send each digest that is due (``force``: NAME, or "" for all, now); start the next period."""
        now = self.now()
        for name, g in self.cfg.digests.items():
            st = self.states[("digest", name)]
            bucket = self.buckets[name]
            due = st.data.get("next_due")
            forced = force is not None and force in ("", name)
            if due is None:
                st.data["next_due"] = digest.first_due(g, now)  # never at once on a first start
                st.dirty = True
            if forced or (due is not None and now >= due):
                bucket.close_period()
                st.data["next_due"] = digest.first_due(g, now)
                st.dirty = True
            self._send_digest(g, st, bucket, now, p, retry_now or forced)
            st.save(durable=True)
        self._close_transports()

    def _send_digest(self, g: Digest, st: State, bucket: digest.Bucket, now: float, p: Pass, force: bool) -> None:
        recs = bucket.closed()
        if not recs:
            bucket.sent()
            return
        retry = st.data.get("digest_retry")
        if retry and not force and now < retry["next"]:
            p.waiting.add(f"digest {g.name}")
            return
        sent: list[str] = st.data.setdefault("sent_to", [])
        host = source_hostname()
        subject, text = digest.text(g, recs, host)
        for dname in g.to:
            if dname in sent:
                continue
            d = self.cfg.destinations[dname]
            mid = digest.digest_id(g.name, recs, dname, d.sender.rsplit("@", 1)[-1] if d.sender else host)
            out = digest_outgoing(d, g, subject, text, mid, now)
            fields = {"destination": dname, "digest": g.name, "message_id": mid}
            try:
                answer = self._transport(d).send(out)
            except DeliveryError as err:
                self.transports.pop(dname, None)
                first = retry["first"] if retry else now
                if err.permanent or now - first >= d.max_age:
                    self.log("gave-up", f"digest {g.name} to {dname} given up: {err.reason}", **fields)
                    sent.append(dname)
                    continue
                attempts = (retry["attempts"] if retry else 0) + 1
                delay = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
                st.data["digest_retry"] = {"first": first, "attempts": attempts, "next": now + delay}
                self.log("retried", f"digest {g.name} to {dname} failed ({err.reason}); next in {delay:.0f} s",
                         reason=err.reason, **fields)
                p.waiting.add(f"digest {g.name}")
                st.dirty = True
                return
            sent.append(dname)
            st.dirty = True
            self.log("digest-sent", f"digest {g.name} ({len(recs)} mails) sent to {dname}: {answer}", **fields)
        bucket.sent()
        st.data["sent_to"] = []
        st.data.pop("digest_retry", None)
        st.dirty = True


def outgoing(d: Destination, e: MailEntry, raw: bytes, unit: str, rule: str, now: float) -> compose.Outgoing:
    """What goes to ``d`` for one mail."""
    if d.type == "webhook":
        return compose.webhook(e, raw, unit, d, rule)
    if d.mode == "resend":
        return compose.resend(e, raw, d, now)
    return compose.wrap(e, raw, unit, d, rule, now)


def source_hostname() -> str:
    import socket

    return socket.gethostname()


def digest_outgoing(d: Destination, g: Digest, subject: str, text: str, mid: str, now: float) -> compose.Outgoing:
    if d.type == "smtp":
        return compose.plain_mail(d, subject, text, mid, now)
    if d.format == "ntfy":
        return compose.Outgoing(mid, data=text.encode("utf-8", "replace"), summary=subject,
                                headers=(("Title", compose.clean(subject) if subject.isascii() else
                                          Header(subject, "utf-8").encode()),
                                         ("X-Journal-Mail-Forwarded", "digest")))
    payload = ({"text": f"*{subject}*\n```{text}```"} if d.format == "slack"
               else {"digest": g.name, "subject": subject, "text": text, "message_id": mid})
    return compose.Outgoing(mid, data=json.dumps(payload, ensure_ascii=False).encode(), summary=subject,
                            headers=(("Content-Type", "application/json; charset=utf-8"),
                                     ("X-Journal-Mail-Forwarded", "digest")))


# -- dry run --------------------------------------------------------------------------


def dry_run(cfg: Config, src: Source, reader: Any, out: IO[str]) -> int:
    """Every mail of the source, what the rules decide and what would go out; nothing sent, no state written."""
    now = time.time()
    n = 0

    def gap(why: str) -> None:
        pass

    for host in source.hosts(reader):
        for m in source.scan(reader, host, None, gap):
            e = m.entry
            lazy = Lazy(e, lambda: open_reader(src))
            dec = decide(cfg.rules, m, lazy.body)
            n += 1
            out.write(f"{rfc3339(e.realtime)} {e.hostname} {e.mail_id} {compose.clean(e.subject)!r}\n")
            for line in explain(cfg, m, dec, lazy, now):
                out.write(f"    {line}\n")
    out.write(f"{n} mail(s) looked at; nothing sent (dry run)\n")
    return 0


def explain(cfg: Config, m: Mail, dec: Decision, lazy: Lazy, now: float) -> Iterator[str]:
    if dec.why:
        yield f"not forwarded: {dec.why}"
        return
    if not dec.rules:
        yield "no rule matched: stays in the journal only"
        return
    yield "rule" + ("s " if len(dec.rules) > 1 else " ") + ", ".join(repr(r) for r in dec.rules) + " decided"
    if dec.dropped and not dec.route and not dec.digests:
        yield "dropped: stays in the journal only"
    for name in dec.route:
        d = cfg.destinations[name]
        try:
            raw = lazy.raw()
        except DamagedMail as err:
            yield f"-> {name}: would give up: {err.reason}"
            continue
        o = outgoing(d, m.entry, raw, m.unit, dec.rules[-1], now)
        if d.type == "smtp":
            yield (f"-> {name}: {d.mode} via {d.url} to {', '.join(d.to)}, Subject: {o.summary!r}, "
                   f"Message-ID: {o.message_id}, {len(o.data)} bytes")
        else:
            yield f"-> {name}: POST {d.url} ({d.format}, {len(o.data)} bytes), {o.summary!r}"
    for g in dec.digests:
        yield f"-> digest {g} (to {', '.join(cfg.digests[g].to)})"


# -- following --------------------------------------------------------------------------


def follow(load: Callable[[], Config], src: Source, log: Events, reader: Any) -> int:
    """Forward as mail arrives, until SIGTERM; SIGHUP reloads the configuration (a bad one keeps the old)."""
    flags = Signals.install()  # SIGHUP: reload the configuration
    fw = Forwarder(load(), src, log)
    try:
        while not flags.stop:
            if flags.hup:
                flags.hup = False
                try:
                    cfg = load()
                except Exception as e:
                    log("reload-failed", f"configuration not reloaded, the old one stays: {e}")
                else:
                    fw.close()
                    fw = Forwarder(cfg, src, log)
                    log("reloaded", f"configuration reloaded from {cfg.path}")
            p = fw.run_pass(reader, force=False, stop=lambda: flags.stop)
            fw.digests_due(None, p, retry_now=False)
            if flags.stop:
                break
            try:
                # new mail wakes us at once; retries and digests due are looked at every second
                reader.wait(int(WAKE * US))
            except InterruptedError:
                pass
    finally:
        fw.close()
    return 0
