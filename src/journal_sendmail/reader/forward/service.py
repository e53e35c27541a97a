"""Service: the forwarder's passes over the journal, for ``--once``, ``--dry-run`` and the following service.

Every destination and every digest is a consumer with its own cursors and
state: one that fails holds back nobody else, and never makes another send
twice.  A consumer reads each host's mail after its cursor, asks the rules,
and moves its cursor past a mail only once the mail is done (delivered,
given up, collected, or not for it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ...body import searchable
from ..assemble import assemble
from ..entry import MailEntry
from ..errors import DamagedMail
from ..output import Signals
from ..render import rfc3339
from ..source import Journal, Source, open_reader
from ..timespec import US
from . import compose, digest, expect, repeat, silence, source
from .config import Config, Destination, Digest, Rule
from .events import Events
from .prefilter import Prefilter
from .rules import Mail, decide
from .state import Retry, State, StateError
from .transport import DeliveryError, PermanentFailure, Transport, read_password, transport

WAKE = 1.0  # seconds: the longest the following service sleeps
STOP_GRACE = 5.0  # seconds a busy worker is given to finish its mail when the service stops
SAVE_EVERY = 500  # entries read without anything to do between two state writes


def mail_key(e: MailEntry) -> str:
    """What makes two entries one mail: its MAIL_ID and its sender (journald's _UID, _HOSTNAME, _BOOT_ID)."""
    return f"{e.mail_id} {e.uid} {e.hostname} {e.boot_id}"


class Lazy:
    """The raw bytes and readable body of one mail, assembled once and only when asked."""

    def __init__(self, e: MailEntry, opener: Callable[[], Journal]) -> None:
        self.e, self.opener = e, opener
        self._body: str | None = None

    @cached_property
    def raw(self) -> bytes:
        return assemble(self.e, self.opener)

    def body(self) -> str:
        if self._body is None:
            try:
                self._body = searchable(self.raw, self.e.text)
            except DamagedMail:
                self._body = self.e.text or ""
        return self._body


@dataclass(frozen=True)
class Plan:
    """What one consumer does with one mail (``Forwarder.plan``): ``act`` is "skip" (not for it),
    "wait" (stop here: retried later), "send" (now), "digest" (into digest ``to``, ``note`` on it),
    "silence" (held back by silence ``to``) or "count" (a repeat, counted in its group's window)."""

    act: str
    to: str = ""
    note: str = ""
    rule: str = ""  # the rule that decided


SKIP, WAIT = Plan("skip"), Plan("wait")


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
        self.reader: Journal | None = None
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
        if cfg.expects:
            self.states[("expect", "all")] = State(cfg.state_dir, "expect", "all")  # one reader for them all
        self.buckets = {n: digest.Bucket(self.states[("digest", n)].dir) for n in cfg.digests}
        self.jobs = {which: Job(which) for which in self.states}
        self.rule_of: dict[str, Rule] = {}
        for r in cfg.rules:
            self.rule_of.setdefault(r.name, r)
        self.silences = silence.Silences(cfg.state_dir)
        self.silence_log = State(cfg.state_dir, "policy", "silences")  # the starts and ends logged

    def opener(self) -> Journal:
        return open_reader(self.src)

    def close(self, grace: float | None = None) -> None:
        """Wait for the workers (``grace``: at most that long each, then leave a busy one as a kill
        would: its state is safe as it is, and it is not touched from here) and write the states."""
        for which, j in self.jobs.items():
            j.join(grace)
            if not j.busy():
                j.close()
                self.states[which].close()
        self.silence_log.close()

    def _transport(self, job: Job, d: Destination) -> Transport:
        if d.name not in job.transports:
            job.transports[d.name] = self.make_transport(d, self.passwords.get(d.name))
        return job.transports[d.name]

    def _drop_transport(self, job: Job, name: str) -> None:
        t = job.transports.pop(name, None)
        if t is not None:
            t.close()

    def _reader(self, job: Job) -> Journal:
        """The job's own reader, opened once, told of new journal files at each run."""
        if job.reader is None:
            job.reader = self.opener()
            job.reader.fileno()  # inotify: process() then notices files added since
        else:
            job.reader.process()
        return job.reader

    # -- a pass -----------------------------------------------------------------------

    def initialize(self, reader: Journal) -> None:
        """First run of a consumer with start = "now": every host's cursor at its newest mail."""
        hosts = source.hosts(reader)
        for st in self.states.values():
            if st.initialized:
                continue
            for h in hosts if self.cfg.start == "now" else []:
                if c := source.last_cursor(reader, h):
                    st.set_cursor(h, c)
            st.initialize()
            st.save(durable=True)

    def run_pass(self, reader: Journal, force: bool, stop: Callable[[], bool] = lambda: False) -> Pass:
        """Every consumer reads what is new for it, each in its own worker, all waited for;
        ``force``: retry now whatever the backoff says."""
        self.initialize(reader)
        self.policies()
        p = Pass(stop=stop)
        self._run_jobs(list(self.jobs.values()), lambda job: self._consume_job(job, p, force))
        return p

    def step(self, reader: Journal, stop: Callable[[], bool]) -> None:
        """The following service's pass: start the worker of every consumer that is idle (one still
        busy with a slow peer is left to it), each digest worker sending its digest when due."""
        self.initialize(reader)
        self._raise_errors()
        self.policies()
        p = Pass(stop=stop)

        def work(job: Job) -> None:
            self._consume_job(job, p, False)
            if job.which[0] == "digest":
                self._digest_job(job, None, p, False)

        for job in self.jobs.values():
            if not job.busy():
                job.start(work)

    def policies(self) -> None:
        """Before each pass: silences.json read again if it changed, and the silences that started or
        ended since logged (once each: what was logged is kept)."""
        try:
            self.silences.refresh()
        except StateError as e:  # edited by hand and broken: the silences read before stay
            self.log("silences-unreadable", f"{e}; the silences read before stay")
        logged = self.silence_log.record("logged")
        for what, s in self.silences.transitions(logged, self.now()):
            self.log(f"silence-{what}", f"silence {s.id} ({s.describe()}) {'started' if what == 'start' else 'ended'}"
                     f"{': ' + s.comment if s.comment else ''}", silence=s.id,
                     until=rfc3339(int(s.end * US)))
            self.silence_log.changed()
        self.silence_log.save(durable=True)

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
        """One consumer reads each host's mail after its cursor."""
        which, st, reader = job.which, self.states[job.which], self._reader(job)
        try:
            if which[0] == "expect":
                return self._expect(job, reader, st)
            for host in source.hosts(reader):
                idle = 0

                def gap(why: str, host: str = host) -> None:
                    self.log("gap", f"{which[0]} {which[1]}: {why}", destination=which[1], host=host)

                for m in source.scan(reader, host, st.cursor(host), gap):
                    if p.stop():
                        return
                    if not self._one(job, which, st, m, p, force):
                        break
                    st.set_cursor(host, m.entry.cursor)
                    idle += 1
                    if st.dirty and idle >= SAVE_EVERY:
                        st.save()
                        idle = 0
                st.save()
                if job.name in p.waiting:
                    return  # down: the other hosts' mail waits too, without knocking on a closed door
            if which[0] == "dest":
                self._summaries(job, self.cfg.destinations[which[1]], st, p)
        finally:
            job.close_transports()
            st.save(durable=True)

    def _one(self, job: Job, which: tuple[str, str], st: State, m: Mail, p: Pass, force: bool) -> bool:
        """Handle one mail for one consumer as ``plan`` says; False: stop here (retry later)."""
        e = m.entry
        key = mail_key(e)
        if key in st.delivered:
            return True
        lazy = Lazy(e, self.opener)
        now = self.now()
        plan = self.plan(which, st, m, key, lazy.body, now, force)
        fields = {"destination": which[1], "mail_id": e.mail_id, "rule": plan.rule, "host": e.hostname}
        if plan.act == "wait":
            p.waiting.add(job.name)
            return False
        if plan.act == "send":
            went = self._deliver(job, self.cfg.destinations[which[1]], st, m, lazy, key, p, now, fields)
            if went and (r := self.rule_of.get(plan.rule)) and r.repeat_interval is not None:
                repeat.opened(st.record("repeats"), r.name, digest.group_values(m, r.group_by), r.repeat_interval,
                              e.realtime / 1_000_000)
                st.changed()
                st.save()  # a kill now costs at most this one mail again
            return went
        if plan.act == "count":  # saved with the cursor, never in the delivered list: a kill loses no count
            r = self.rule_of[plan.rule]
            repeat.count(st.record("repeats"), r.name, digest.group_values(m, r.group_by), e.realtime / 1_000_000,
                          e.mail_id)
            st.changed()
            self.log("repeat-counted", f"mail {e.mail_id} to {which[1]}: a repeat within rule {r.name}'s "
                     "repeat_interval, counted for its summary", **fields)
            return True
        if plan.act == "silence":  # stays in the journal (and in the rule's digest, if any)
            self.log("silenced", f"mail {e.mail_id} to {which[1]} silenced by {plan.to}", silence=plan.to, **fields)
            return True
        if plan.act == "skip":
            st.set_retry(None, key)  # a destination's mail that waited while the rules changed
            return True
        g = self.cfg.digests[plan.to]
        self.buckets[g.name].add(digest.item(m, key, g.group_by, lazy.body(), note=plan.note))
        st.done(key)
        if which[0] == "digest":  # the rule's own digest (a silenced mail too, noted)
            note = f" ({plan.note})" if plan.note else ""
            self.log("collected", f"mail {e.mail_id} collected into digest {g.name}{note}",
                     **{**fields, "destination": "", "digest": g.name})
        else:
            self.log("held", f"mail {e.mail_id} {plan.note}: into digest {g.name}", **fields, digest=g.name)
        return True

    def plan(self, which: tuple[str, str], st: State, m: Mail, key: str, body: Callable[[], str], now: float,
             force: bool) -> Plan:
        """The decision point for one mail and one consumer: the rules, then the consumer's own policy
        (a rate limit, a retry not due yet): send now, into a digest, wait, or not for it."""
        dec = decide(self.cfg.rules, m, body)
        kind, name = which
        rule = dec.rules[-1] if dec.rules else ""
        if kind == "digest":
            s = self.silences.match(m, body) if name in dec.digests and dec.route else None
            return Plan("digest", name, f"silenced by {s.id}" if s else "", rule) if name in dec.digests else SKIP
        if name not in dec.route:
            return SKIP
        d = self.cfg.destinations[name]
        r = self.rule_of.get(rule)
        if r is not None and (held := self.held(d, r, m, body, now)):
            return held
        if d.rate_limit is not None and st.recent(now - d.rate_limit.period) >= d.rate_limit.count:
            return WAIT if d.overflow is None else Plan("digest", d.overflow, f"over {d.name}'s rate limit", rule)
        retry = st.retry(key)
        if retry and not force and now < retry.next:
            return WAIT
        if r is not None and r.repeat_interval is not None and repeat.within(
                st.record("repeats"), r.name, digest.group_values(m, r.group_by), r.repeat_interval,
                m.entry.realtime / 1_000_000):
            return Plan("count", rule=rule)
        return Plan("send", rule=rule)

    def held(self, d: Destination, r: Rule, m: Mail, body: Callable[[], str], now: float) -> Plan | None:
        """The alert policies before a mail goes to ``d``: a silence holds it, quiet hours put it into
        their digest (None: neither)."""
        if (s := self.silences.match(m, body)) is not None:
            return Plan("silence", s.id, rule=r.name)
        hours, quiet = (r.hours, r.quiet_digest) if r.hours else (d.hours, d.quiet_digest)
        if r.urgent or hours is None or quiet is None or hours.inside(now):
            return None
        return Plan("digest", quiet, f"outside the hours of {d.name} ({hours.text})", r.name)

    def _deliver(self, job: Job, d: Destination, st: State, m: Mail, lazy: Lazy, key: str, p: Pass, now: float,
                 fields: dict[str, str]) -> bool:
        e = m.entry
        try:
            out = compose.outgoing(d, e, lazy.raw, fields["rule"], now)
            answer = self._transport(job, d).send(out)
        except DamagedMail as err:
            st.done(key)
            self.log("gave-up", f"mail {e.mail_id} not forwarded to {d.name}: {err.reason}", **fields)
            return True
        except DeliveryError as err:
            self._drop_transport(job, d.name)
            r = Retry.after(st.retry(key), now)
            if err.permanent or now - r.first >= d.max_age:
                why = "refused" if isinstance(err, PermanentFailure) else f"still failing after {r.attempts} attempts"
                st.done(key)
                self.log("gave-up", f"mail {e.mail_id} to {d.name} given up ({why}): {err.reason}", **fields)
                return True
            st.set_retry(r, key)
            st.save()
            self.log("retried", f"mail {e.mail_id} to {d.name} failed ({err.reason}); attempt {r.attempts}, next "
                     f"in {r.next - now:.0f} s", reason=err.reason, **fields)
            p.waiting.add(f"dest {d.name}")
            return False
        st.done(key, sent=now if d.rate_limit is not None else None)
        st.record("status")["last_success"] = now
        self.log("delivered", f"mail {e.mail_id} forwarded to {d.name} ({out.summary}): {answer}",
                 message_id=out.message_id, **fields)
        return True

    def _summaries(self, job: Job, d: Destination, st: State, p: Pass) -> None:
        """Send the repeat summaries that are due (a destination that fails: next pass again)."""
        groups = st.record("repeats")
        if not groups or f"dest {d.name}" in p.waiting:
            return
        now = self.now()
        host = socket.gethostname()
        domain = d.sender.rsplit("@", 1)[-1] if d.sender else host
        for k in repeat.due(groups, now):
            w = groups[k]
            subject, text = repeat.summary(w, host, d.name)
            mid = repeat.summary_id(k, w, d.name, domain)
            try:
                answer = self._transport(job, d).send(compose.digest(d, "repeat", subject, text, mid, now))
            except DeliveryError as err:
                self._drop_transport(job, d.name)
                self.log("retried", f"repeat summary to {d.name} failed ({err.reason}); next pass again",
                         destination=d.name, reason=err.reason, message_id=mid)
                p.waiting.add(f"dest {d.name}")
                return
            del groups[k]
            st.changed()
            st.save(durable=True)  # a kill now repeats at most this summary
            self.log("repeat-summary", f"{subject} sent to {d.name}: {answer}", destination=d.name, message_id=mid,
                     rule=w["rule"])
        if repeat.expire(groups, now):
            st.changed()

    def _expect(self, job: Job, reader: Journal, st: State) -> None:
        """The expectations: what each host sent that they match (seen when ``expect.seen_at`` says), then a
        "missing" or "resolved" notice to each destination that has not been told yet."""
        now = self.now()
        rec0 = st.record("expect")
        floor = rec0.get("pass_start")
        seen: dict[str, dict[str, dict[str, Any]]] = rec0.setdefault("seen", {})
        index = Prefilter([(x, x.rule) for x in self.cfg.expects])
        for host in source.hosts(reader):
            for m in source.scan(reader, host, st.cursor(host), lambda why: None):
                e = m.entry
                lazy = Lazy(e, self.opener)
                t = e.realtime / 1_000_000
                for x in () if e.damaged or m.forwarded else index.matching(m, lazy.body):
                    expect.observe(seen.setdefault(x.name, {}), host, t, expect.seen_at(t, floor, now), e.mail_id)
                st.set_cursor(host, e.cursor)
        rec0["pass_start"] = now
        st.changed()
        st.save()
        loghost = socket.gethostname()
        for x in self.cfg.expects:
            hosts = seen.setdefault(x.name, {})
            started = expect.first_pass(rec0, x.name, now)
            for h in x.hosts:
                hosts.setdefault(h, {"told": {}})
            for host, rec in hosts.items():
                now_state = expect.state(rec, now, x.every, x.grace, started)
                for dname in expect.to_tell(rec, now_state, x.route):
                    d = self.cfg.destinations[dname]
                    kind = "missing" if now_state == "missing" else "resolved"
                    subject, text = expect.notice(x.name, host, rec, now_state, x.every, x.grace, loghost)
                    mid = expect.notice_id(x.name, host, now_state, rec, dname, d.sender.rsplit("@", 1)[-1]
                                           if d.sender else loghost)
                    fields = {"destination": dname, "host": host, "expect": x.name, "message_id": mid}
                    try:
                        answer = self._transport(job, d).send(compose.digest(d, kind, subject, text, mid, now))
                    except DeliveryError as err:
                        self._drop_transport(job, dname)
                        self.log("retried", f"{kind} notice of {x.name} for {host} to {dname} failed ({err.reason});"
                                 " next pass again", reason=err.reason, **fields)
                        continue
                    rec["told"][dname] = now_state
                    st.changed()
                    st.save(durable=True)  # a kill now repeats at most this notice
                    self.log(f"expect-{kind}", f"{subject} sent to {dname}: {answer}", **fields)

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
        due = st.next_due()
        forced = force is not None and force in ("", name)
        opens = self._hours_open(name, st, now)
        if forced or opens or due is None or now >= due:
            if forced or opens or due is not None:  # never at once on a first start
                bucket.close_period()
            st.set_next_due(digest.first_due(g, now))
        try:
            self._send_digest(job, g, st, bucket, now, p, retry_now or forced)
        finally:
            job.close_transports()
            st.save(durable=True)

    def _hours_open(self, name: str, st: State, now: float) -> bool:
        """A quiet_digest is due when the hours that feed it open: True then."""
        windows = [r.hours for r in self.cfg.rules if r.quiet_digest == name and r.hours]
        windows += [d.hours for d in self.cfg.destinations.values() if d.quiet_digest == name and d.hours]
        rec = st.record("hours")
        if not windows:
            return False
        if (opens := rec.get("open")) is not None and now >= opens:
            del rec["open"]
            st.changed()
            return True
        if opens is None and not any(h.inside(now) for h in windows):
            rec["open"] = min(h.next_open(now) for h in windows)
            st.changed()
        return False

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
        retry = st.retry()
        if retry and not force and now < retry.next:
            p.waiting.add(f"digest {g.name}")
            return
        host = socket.gethostname()
        for dname in g.to:
            d = self.cfg.destinations[dname]
            domain = d.sender.rsplit("@", 1)[-1] if d.sender else host
            while not st.finished(dname):
                limit = st.part_limit(dname, compose.digest_limit(g, d))
                todo = digest.parts(g, recs, host, limit, skip=st.sent_groups(dname), chat=compose.chat(d))
                for part in todo:
                    mid = digest.digest_id(g.name, part.keys, dname, domain)
                    out = compose.digest(d, g.name, part.subject, part.text, mid, now)
                    fields = {"destination": dname, "digest": g.name, "message_id": mid}
                    try:
                        answer = self._transport(job, d).send(out)
                    except DeliveryError as err:
                        self._drop_transport(job, dname)
                        too_big = err.code in (552, 413)
                        if too_big and limit > digest.PART_MIN:
                            st.set_part_limit(dname, max(digest.PART_MIN, limit // 4))
                            self.log("retried", f"digest {g.name} to {dname} too big for it ({err.reason}): sent in "
                                     f"parts of at most {st.part_limit(dname, 0)} bytes", reason=err.reason, **fields)
                            break  # the rest again, in smaller parts
                        r = Retry.after(retry, now)
                        if not too_big and (err.permanent or now - r.first >= d.max_age):
                            self.log("gave-up", f"digest {g.name} to {dname} given up: {err.reason}", **fields)
                            st.finish(dname)
                            break
                        # down, or refusing even the smallest part: the bucket stays, retried later
                        st.set_retry(r)
                        self.log("retried", f"digest {g.name} to {dname} failed ({err.reason}); next in "
                                 f"{r.next - now:.0f} s", reason=err.reason, **fields)
                        p.waiting.add(f"digest {g.name}")
                        return
                    st.sent_part(dname, part.group_keys)
                    st.save(durable=True)  # a kill now repeats at most this part
                    self.log("digest-sent", f"{part.subject} sent to {dname}: {answer}", **fields)
                else:
                    st.finish(dname)  # every part went (or there was none left)
        bucket.sent()
        st.digest_sent()


# -- following --------------------------------------------------------------------------


def follow(load: Callable[[], Config], src: Source, log: Events, reader: Journal) -> int:
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
            with suppress(InterruptedError):  # new mail wakes us at once; retries and digests due every second
                reader.wait(int(WAKE * US))
    finally:
        fw.close(grace=STOP_GRACE)  # a worker stuck with a slow peer does not hold the stop up
    return 0
