"""Service: the forwarder's passes over the journal, for ``--once``, ``--dry-run`` and the following service.

Every destination and every digest is a consumer with its own cursors and
state: one that fails holds back nobody else, and never makes another send
twice.  A consumer reads each host's mail after its cursor, asks the rules,
and moves its cursor past a mail only once the mail is done (delivered,
given up, collected, or not for it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ...body import searchable
from ...errors import DamagedMail
from ..assemble import assemble
from ..entry import MailEntry
from ..output import Signals
from ..query import Source, open_reader
from ..render import printable, rfc3339
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
STOP_GRACE = 5.0  # seconds a busy worker is given to finish its mail when the service stops
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


class Job:
    """One consumer's worker (``dest NAME`` or ``digest NAME``): its own journal reader, its own
    connections, its own thread, so that one destination that hangs or fails holds back no other
    destination nor digest.  A job touches only its own state (and, under the bucket's lock, the
    bucket of an overflow digest)."""

    def __init__(self, which: tuple[str, str]) -> None:
        self.which = which
        self.name = " ".join(which)
        self.reader: Any = None
        self.transports: dict[str, Transport] = {}
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, work: Callable[[Job], None]) -> None:
        def run() -> None:
            try:
                work(self)
            except BaseException as e:  # handed to the main thread, which raises it
                self.error = e

        self.error = None
        self.thread = threading.Thread(target=run, name=f"journal-mail-forward {self.name}", daemon=True)
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def close_transports(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports = {}

    def close(self) -> None:
        self.close_transports()
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class Forwarder:
    def __init__(self, cfg: Config, src: Source, log: Events, now: Callable[[], float] = time.time,
                 make_transport: Callable[[Destination, str | None], Transport] = transport) -> None:
        self.cfg, self.src, self.log, self.now = cfg, src, log, now
        self.passwords = {n: read_password(d.password_file, f"destination.{n}.password_file")
                          for n, d in cfg.destinations.items() if d.password_file}
        self.make_transport = make_transport
        self.states = {("dest", n): State(cfg.state_dir, "dest", n) for n in cfg.destinations}
        self.states |= {("digest", n): State(cfg.state_dir, "digest", n) for n in cfg.digests}
        self.buckets = {n: digest.Bucket(self.states[("digest", n)].dir) for n in cfg.digests}
        self.jobs = {which: Job(which) for which in self.states}

    def opener(self) -> Any:
        return open_reader(self.src)

    def close(self, grace: float | None = None) -> None:
        """Wait for the workers (``grace``: at most that long each, then leave a busy one as a kill
        would: its state is safe as it is, and it is not touched from here) and write the states."""
        for which, j in self.jobs.items():
            j.join(grace)
            if j.busy():
                continue
            j.close()
            self.states[which].close()

    def _transport(self, job: Job, d: Destination) -> Transport:
        if d.name not in job.transports:
            job.transports[d.name] = self.make_transport(d, self.passwords.get(d.name))
        return job.transports[d.name]

    def _drop_transport(self, job: Job, name: str) -> None:
        t = job.transports.pop(name, None)
        if t is not None:
            t.close()

    def _reader(self, job: Job) -> Any:
        """The job's own reader, opened once, told of new journal files at each run."""
        if job.reader is None:
            job.reader = self.opener()
            job.reader.fileno()  # inotify: process() then notices files added since
        else:
            job.reader.process()
        return job.reader

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
        """Every consumer reads what is new for it, each in its own worker, all waited for;
        ``force``: retry now whatever the backoff says."""
        self.initialize(reader)
        p = Pass(stop=stop)
        self._run_jobs(list(self.jobs.values()), lambda job: self._consume_job(job, p, force))
        return p

    def step(self, reader: Any, stop: Callable[[], bool]) -> None:
        """The following service's pass: start the worker of every consumer that is idle (one still
        busy with a slow peer is left to it), each digest worker sending its digest when due."""
        self.initialize(reader)
        self._raise_errors()
        p = Pass(stop=stop)

        def work(job: Job) -> None:
            self._consume_job(job, p, False)
            if job.which[0] == "digest":
                self._digest_job(job, None, p, False)

        for job in self.jobs.values():
            if not job.busy():
                job.start(work)

    def _run_jobs(self, jobs: list[Job], work: Callable[[Job], None]) -> None:
        for job in jobs:
            job.start(work)
        for job in jobs:
            job.join()
        self._raise_errors()

    def _raise_errors(self) -> None:
        for job in self.jobs.values():
            if job.error is not None and not job.busy():
                e, job.error = job.error, None
                raise e

    def _consume_job(self, job: Job, p: Pass, force: bool) -> None:
        st = self.states[job.which]
        reader = self._reader(job)
        try:
            self._consume(job, reader, source.hosts(reader), job.which, p, force)
        finally:
            job.close_transports()
            st.save(durable=True)

    def _consume(self, job: Job, reader: Any, hosts: list[str], which: tuple[str, str], p: Pass,
                 force: bool) -> None:
        st = self.states[which]
        for host in hosts:
            idle = 0

            def gap(why: str, host: str = host) -> None:
                self.log("gap", f"{which[0]} {which[1]}: {why}", destination=which[1], host=host)

            for m in source.scan(reader, host, st.cursor(host), gap):
                if p.stop():
                    return
                go_on = self._one(job, which, st, m, p, force)
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

    def _one(self, job: Job, which: tuple[str, str], st: State, m: Mail, p: Pass, force: bool) -> bool:
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
        return self._deliver(job, self.cfg.destinations[name], st, m, lazy, dec, key, p, force)

    def _deliver(self, job: Job, d: Destination, st: State, m: Mail, lazy: Lazy, dec: Decision, key: str,
                 p: Pass, force: bool) -> bool:
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
            answer = self._transport(job, d).send(out)
        except DamagedMail as err:
            self._give_up(d, st, key, f"mail {e.mail_id} not forwarded to {d.name}: {err.reason}", fields)
            return True
        except DeliveryError as err:
            self._drop_transport(job, d.name)
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
        """Send each digest that is due (``force``: NAME, or "" for all, now), each in its worker."""
        jobs = [self.jobs[("digest", n)] for n in self.cfg.digests]
        self._run_jobs(jobs, lambda job: self._digest_job(job, force, p, retry_now))

    def _digest_job(self, job: Job, force: str | None, p: Pass, retry_now: bool) -> None:
        """One digest: start its next period when due, and send what is closed."""
        now = self.now()
        name = job.which[1]
        g = self.cfg.digests[name]
        st = self.states[job.which]
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
        try:
            self._send_digest(job, g, st, bucket, now, p, retry_now or forced)
        finally:
            job.close_transports()
            st.save(durable=True)

    def _send_digest(self, job: Job, g: Digest, st: State, bucket: digest.Bucket, now: float, p: Pass,
                     force: bool) -> None:
        """Send the closed bucket to each destination, as mails of a bounded size; the groups each
        destination got are kept in the state, so that a retry or a split sends only the rest.
        A 552 (size) or 413 makes the parts smaller; the bucket goes only once every destination
        took it (or refused it for another reason)."""
        recs = bucket.closed()
        if not recs:
            bucket.sent()
            return
        retry = st.data.get("digest_retry")
        if retry and not force and now < retry["next"]:
            p.waiting.add(f"digest {g.name}")
            return
        sent_groups: dict[str, list[str]] = st.data.setdefault("sent_groups", {})
        limits: dict[str, int] = st.data.setdefault("max_bytes", {})
        finished: list[str] = st.data.setdefault("sent_to", [])
        host = source_hostname()
        for dname in g.to:
            if dname in finished:
                continue
            d = self.cfg.destinations[dname]
            domain = d.sender.rsplit("@", 1)[-1] if d.sender else host
            while dname not in finished:
                limit = limits.get(dname, digest_limit(g, d))
                todo = digest.parts(g, recs, host, limit, skip=frozenset(sent_groups.get(dname, [])),
                                    chat=d.type == "webhook" and d.format in ("ntfy", "slack"))
                for part in todo:
                    mid = digest.digest_id(g.name, part.keys, dname, domain)
                    out = digest_outgoing(d, g, part.subject, part.text, mid, now)
                    fields = {"destination": dname, "digest": g.name, "message_id": mid}
                    try:
                        answer = self._transport(job, d).send(out)
                    except DeliveryError as err:
                        self._drop_transport(job, dname)
                        too_big = err.code in (552, 413)
                        if too_big and limit > digest.PART_MIN:
                            limits[dname] = max(digest.PART_MIN, limit // 4)
                            st.dirty = True
                            self.log("retried", f"digest {g.name} to {dname} too big for it ({err.reason}): sent "
                                     f"in parts of at most {limits[dname]} bytes", reason=err.reason, **fields)
                            break  # the rest again, in smaller parts
                        first = retry["first"] if retry else now
                        if not too_big and (err.permanent or now - first >= d.max_age):
                            self.log("gave-up", f"digest {g.name} to {dname} given up: {err.reason}", **fields)
                            finished.append(dname)
                            st.dirty = True
                            break
                        # down, or refusing even the smallest part: the bucket stays, retried later
                        attempts = (retry["attempts"] if retry else 0) + 1
                        delay = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
                        st.data["digest_retry"] = {"first": first, "attempts": attempts, "next": now + delay}
                        self.log("retried", f"digest {g.name} to {dname} failed ({err.reason}); next in "
                                 f"{delay:.0f} s", reason=err.reason, **fields)
                        p.waiting.add(f"digest {g.name}")
                        st.dirty = True
                        return
                    sent_groups.setdefault(dname, []).extend(part.group_keys)
                    st.dirty = True
                    st.save(durable=True)  # a kill now repeats at most this part
                    self.log("digest-sent", f"{part.subject} sent to {dname}: {answer}", **fields)
                else:
                    finished.append(dname)  # every part went (or there was none left)
                    st.dirty = True
        bucket.sent()
        st.data["sent_to"] = []
        st.data.pop("sent_groups", None)
        st.data.pop("digest_retry", None)
        st.dirty = True


def digest_limit(g: Digest, d: Destination) -> int:
    """The most text bytes of one digest mail to ``d``: the digest's max_size, or less for a chat."""
    if d.type == "webhook" and d.format == "ntfy":
        return min(g.max_size, compose.NTFY_MESSAGE_MAX)
    if d.type == "webhook" and d.format == "slack":
        return min(g.max_size, 30_000)  # Slack shortens a message past 40,000 characters
    return g.max_size


def outgoing(d: Destination, e: MailEntry, raw: bytes, unit: str, rule: str, now: float) -> compose.Outgoing:
    """What goes to ``d`` for one mail."""
    if d.type == "webhook":
        return compose.webhook(e, raw, unit, d, rule)
    if d.mode == "resend":
        return compose.resend(e, raw, unit, d, rule, now)
    return compose.wrap(e, raw, unit, d, rule, now)


def source_hostname() -> str:
    import socket

    return socket.gethostname()


def digest_outgoing(d: Destination, g: Digest, subject: str, text: str, mid: str, now: float) -> compose.Outgoing:
    if d.type == "smtp":
        return compose.plain_mail(d, subject, text, mid, now)
    if d.format == "ntfy":
        return compose.ntfy(d.url, subject, text, mid, (("X-Journal-Mail-Forwarded", "digest"),))
    payload = ({"text": f"*{compose.slack_escape(subject)}*\n```{compose.slack_escape(text)}```"}
               if d.format == "slack"
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
            out.write(printable(f"{rfc3339(e.realtime)} {e.hostname} {e.mail_id} {compose.clean(e.subject)!r}",
                                one_line=True) + "\n")
            for line in explain(cfg, m, dec, lazy, now):
                out.write(f"    {printable(line, one_line=True)}\n")
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
                    fw.close()  # waits for its workers: each is bounded by its destinations' deadlines
                    fw = Forwarder(cfg, src, log)
                    log("reloaded", f"configuration reloaded from {cfg.path}")
            fw.step(reader, stop=lambda: flags.stop)
            if flags.stop:
                break
            try:
                # new mail wakes us at once; retries and digests due are looked at every second
                reader.wait(int(WAKE * US))
            except InterruptedError:
                pass
    finally:
        fw.close(grace=STOP_GRACE)  # a worker stuck with a slow peer does not hold the stop up
    return 0
