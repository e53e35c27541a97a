"""The web inbox's pages and API: a request in, a Response out, over the reader's own
Query (``select``, ``find``, ``counted``), filters (the ``list`` options' table,
``attrs``), reassembly (``whole``) and renderers (``render``).

No I/O here but the journal's: the HTTP server is ``server.py``.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2

from ...errors import JournalSendmailError, UsageError
from .. import indexed, render
from ..attrs import LIST_FILTERS
from ..entry import MailEntry
from ..errors import DamagedMail, NoPermission, NotFound
from ..filters import make_filters
from ..output import Io
from ..query import follow
from ..select import Query, body_of, counted, find, resolved, select, whole
from ..source import Journal, Source, open_journal, open_reader
from . import svg

HERE = os.path.dirname(__file__)
PER_PAGE = 50
MAX_PAGE = 200  # older mail than 10,000 back: narrow the list with since/until
MAX_API = 1000  # /api/mails?n= at most (and without n)
MAX_STREAMS = 16  # /api/events open at once (each holds a thread and a journal reader); beyond: 503
# Lists, searches and stats may read the whole journal (a search that finds nothing does):
# this many at once, another waits at most READ_WAIT seconds, then 503.  A page elsewhere
# can make a reader's browser ask for them; the reader's other pages still come.
MAX_READS, READ_WAIT = 4, 5.0
STATS_BY = ("host", "caller", "unit", "user")

# The list's filters as query parameters: each is the ``journal-mail list`` option of
# that name (``attrs``: ``?caller_unit=`` for ``--caller-unit``), made into Filters by the
# same code, so ``?host=web1&since=-1d`` means what ``journal-mail list --host web1 --since -1d`` means.
MANY = {a.name for a in LIST_FILTERS} | {"boot"}  # given again: another value allowed
OPTIONS = (*MANY, "since", "until", "subject", "grep")
FLAGS = ("spooled", "refused")
LIST_ONLY = {"q", "page"}
API_ONLY = ("n", "reverse")

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# A mail's HTML: no script, nothing loaded (a tracking pixel is not fetched), only inline style;
# ``sandbox`` also when the frame's address is opened by itself.
MAIL_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; " \
                "frame-src 'none'; child-src 'none'; frame-ancestors 'self'; sandbox"
# The raw bytes: never a page, whatever a browser makes of them.
RAW_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"
STATIC = {"style.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}


@dataclass
class Response:
    status: int
    body: bytes | Iterator[bytes] = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    csp: str = PAGE_CSP

    def all_headers(self) -> list[tuple[str, str]]:
        """The security headers every answer carries, then its own."""
        return [("Content-Type", self.content_type), ("Content-Security-Policy", self.csp),
                ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                ("X-Frame-Options", "SAMEORIGIN" if "frame-ancestors 'self'" in self.csp else "DENY"),
                ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Resource-Policy", "same-origin"),
                ("Cache-Control", "no-store"), ("X-DNS-Prefetch-Control", "off"), *self.headers]


class Inbox:
    """The pages over one source (the server's ``-D``, ``--file`` or ``--namespace``)."""

    def __init__(self, source: Source, index: bool, io: Io, stopping: threading.Event | None = None) -> None:
        self.source, self.index = source, index
        self.io = io
        self.stopping = stopping or threading.Event()
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self.reads = threading.BoundedSemaphore(MAX_READS)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.globals.update(human_size=render.human_size, local_time=render.local_time,
                                printable=render.printable, link=link)
        self.routes: list[tuple[re.Pattern[str], Callable[..., Response]]] = [
            (re.compile(r"/"), self.page_list),
            (re.compile(r"/mail/([0-9a-fA-F]{1,32})"), self.page_mail),
            (re.compile(r"/mail/([0-9a-fA-F]{1,32})/raw"), self.mail_raw),
            (re.compile(r"/mail/([0-9a-fA-F]{1,32})/html"), self.mail_html),
            (re.compile(r"/stats"), self.page_stats),
            (re.compile(r"/api/mails"), self.api_mails),
            (re.compile(r"/api/mails/([0-9a-fA-F]{1,32})"), self.api_mail),
            (re.compile(r"/api/events"), self.api_events),
            (re.compile(r"/static/([a-z.]+)"), self.static),
        ]

    # -- dispatch -------------------------------------------------------------

    def handle(self, method: str, target: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET: this inbox changes nothing\n", "text/plain; charset=utf-8",
                            [("Allow", "GET, HEAD")])
        url = urlsplit(target)
        try:
            params = parse_qsl(url.query, keep_blank_values=True)
        except ValueError:
            params = []
        for pattern, page in self.routes:
            m = pattern.fullmatch(url.path)
            if m:
                scan = page in (self.page_list, self.page_stats, self.api_mails)
                if scan and not self.reads.acquire(timeout=READ_WAIT):
                    return Response(503, b"too many searches at once; try again\n", "text/plain; charset=utf-8",
                                    [("Retry-After", "5")])
                try:
                    return page(params, *m.groups())
                except JournalSendmailError as e:
                    return self.error(e)
                finally:
                    if scan:
                        self.reads.release()
        return self.error(NotFound(f"no page {url.path}"))

    def error(self, e: JournalSendmailError) -> Response:
        status = {UsageError: 400, NotFound: 404, NoPermission: 403, DamagedMail: 409}.get(type(e), 500)
        self.io.say(f"{status}: {e.reason}")
        return Response(status, self.html("error.html", status=status, reason=e.reason, title="Error"))

    def html(self, template: str, **values: Any) -> bytes:
        return self.env.get_template(template).render(source=self.source_text(), **values).encode("utf-8")

    # -- arguments: the query parameters as the reader's command line -----------

    def query_for(self, params: list[tuple[str, str]], allowed: Iterable[str] = ()) -> Query:
        """The Query the parameters ask for (a bad one: UsageError, a 400)."""
        given: dict[str, Any] = {}
        lines, reverse = None, False
        for key, value in params:
            if key in allowed and key == "n" and value:
                if value != "all" and not value.isdigit():
                    raise UsageError(f"n: want a number or 'all', not {value!r}")
                lines = None if value == "all" else int(value)
                if lines is not None and lines > MAX_API:
                    raise UsageError(f"n must be a number from 0 to {MAX_API}")
            elif key in allowed and key == "reverse":
                reverse = reverse or bool(value)
            elif key in LIST_ONLY:
                continue
            elif key in FLAGS:
                given[key] = given.get(key) or value not in ("", "0", "no")
            elif key in OPTIONS:
                if value and key in MANY:
                    given.setdefault(key, []).append(_bounded(key, value))
                elif value:
                    given[key] = _bounded(key, value)
            else:
                raise UsageError(f"unknown parameter {key!r}: filters are {', '.join([*OPTIONS, *FLAGS, 'q'])}")
        return Query(self.source, make_filters(given), lines, reverse, index=self.index)

    def source_text(self) -> str:
        """The source options, as a command line would give them."""
        s = self.source
        if s.directory:
            return f" -D {shlex.quote(s.directory)}"
        if s.namespace:
            return f" --namespace={shlex.quote(s.namespace)}"
        if s.files:
            return " --file " + " ".join(shlex.quote(f) for f in s.files)
        return ""

    def journal(self, q: Query) -> tuple[Journal, Query]:
        reader = open_journal(self.source)
        try:
            return reader, resolved(q, reader)
        except BaseException:
            reader.close()
            raise

    def mails(self, q: Query, search: str) -> Generator[MailEntry, None, None]:
        """The mail ``q`` selects, those the search finds (through the index, when there is one)."""
        reader, q = self.journal(q)
        try:
            entries = select(replace(q, search=search or None), reader)
            try:
                yield from entries
            finally:
                entries.close()
        finally:
            reader.close()

    # -- pages ------------------------------------------------------------------

    def page_list(self, params: list[tuple[str, str]]) -> Response:
        q = _param(params, "q")
        page = _page(params)
        query = replace(self.query_for(params), reverse=True)  # newest first, as it comes: this page's rows kept
        skip, more = page * PER_PAGE, False
        rows: list[MailEntry] = []
        with closing(self.mails(query, q)) as mails:  # a page read: the journal closed at once
            for n, e in enumerate(mails):
                if n < skip:
                    continue
                if len(rows) == PER_PAGE:
                    more = True
                    break
                rows.append(e)
        filters = [(k, v) for k, v in params if k not in ("page",) and v]
        return Response(200, self.html(
            "list.html", title="Mail", rows=rows, page=page, more=more, q=q,
            filters=filters, query=lambda **kw: query_string(params, **kw), live=page == 0))

    def one(self, params: list[tuple[str, str]], mail_id: str) -> tuple[MailEntry, bytes]:
        """The mail ``mail_id`` names (``?uid=``, ``?host=`` pick one of forged twins) and its bytes."""
        given: dict[str, list[str]] = {}
        for key, value in params:
            if key in ("uid", "host", "user") and value:
                given.setdefault(key, []).append(value)
            else:
                raise UsageError(f"unknown parameter {key!r} (a mail takes uid, user and host)")
        make_filters(given)  # a bad uid or user: 400 before the journal is read
        reader = open_journal(self.source)
        try:
            e = find(given, mail_id, reader)
        finally:
            reader.close()
        return e, whole(e, self.source)

    def page_mail(self, params: list[tuple[str, str]], mail_id: str) -> Response:
        e, raw = self.one(params, mail_id)
        msg = render.message(raw)  # the one bounded parse (issue 21)
        assert isinstance(msg, EmailMessage)
        body, attachments = render.readable(msg)
        html_part = _html_part(msg)
        facts = render.envelope_lines(e)  # Unit among them, once
        headers = [(k, render.printable(render.header_text(v), one_line=True)) for k, v in msg.items()]
        pick = "".join(f"&{k}={quote(v)}" for k, v in params)
        src = self.source_text()
        return Response(200, self.html(
            "mail.html", title=e.subject or "(no subject)", e=e, facts=facts, headers=headers,
            summary=[(k, v) for k, v in headers if k.title() in render.SUMMARY_HEADERS],
            body=render.printable(body), body_is_html=html_part is not None and _is_body(msg, html_part),
            has_html=html_part is not None, attachments=attachments, pick=("?" + pick[1:]) if pick else "",
            commands=[f"journal-mail{src} show {e.mail_id}", f"journalctl{src} MAIL_ID={e.mail_id}"],
            forwarded=forwarder_said("for_mail", e.mail_id)))

    def mail_raw(self, params: list[tuple[str, str]], mail_id: str) -> Response:
        e, raw = self.one(params, mail_id)
        return Response(200, raw, "message/rfc822",
                        [("Content-Disposition", f'inline; filename="{render.eml_name(e)}"')], csp=RAW_CSP)

    def mail_html(self, params: list[tuple[str, str]], mail_id: str) -> Response:
        """The mail's HTML part, for the sandboxed frame only: its CSP runs nothing and loads nothing."""
        _, raw = self.one(params, mail_id)
        msg = render.message(raw)  # the one bounded parse (issue 21)
        part = _html_part(msg)
        if part is None:
            raise NotFound(f"mail {mail_id} has no HTML part")
        from .sanitize import clean_html

        return Response(200, clean_html(render.part_text(part)).encode("utf-8", "replace"), csp=MAIL_HTML_CSP)

    def page_stats(self, params: list[tuple[str, str]]) -> Response:
        tables, damaged = self.stats(self.query_for(params), ("day", *STATS_BY))
        days = tables.pop("day")
        chart = svg.bars([(k, c) for k, c, _ in days], title="mails per day")
        total = sum(c for _, c, _ in days)
        silences = forwarder_said("running_silences", render.rfc3339(int(time.time() * 1_000_000)))
        return Response(200, self.html("stats.html", title="Stats", chart=chart, days=days, tables=tables,
                                       total=total, damaged=damaged, silences=silences,
                                       query=lambda **kw: query_string(params, **kw)))

    def stats(self, q: Query, keys: tuple[str, ...]) -> tuple[dict[str, list[tuple[str, int, int]]], int]:
        """The stats of every key, as ``journal-mail stats`` counts them (``select.counted``)."""
        reader, q = self.journal(q)
        try:
            found = counted(q, keys, reader)
        finally:
            reader.close()
        return {by: render.stats_sorted(found.rows[by], by) for by in keys}, found.damaged

    # -- API ----------------------------------------------------------------------

    def api_mails(self, params: list[tuple[str, str]]) -> Response:
        """JSON lines, as ``journal-mail list --json`` with the same filters (and ``n``, ``reverse``)."""
        query = self.query_for(params, allowed=API_ONLY)
        q = _param(params, "q")
        want = MAX_API if query.lines is None else query.lines
        lines: list[bytes] = []
        with closing(self.mails(replace(query, lines=None, reverse=True), q)) as mails:  # newest first, as it comes
            for e in mails:
                if len(lines) >= want:
                    break
                lines.append(render.json_line(render.json_record(e)).encode("utf-8", "surrogateescape"))
        if not query.reverse:
            lines.reverse()
        return Response(200, b"".join(lines), "application/x-ndjson; charset=utf-8")

    def api_mail(self, params: list[tuple[str, str]], mail_id: str) -> Response:
        """One mail with its body, as ``journal-mail export --format json`` writes it."""
        e, raw = self.one(params, mail_id)
        return Response(200, render.json_line(render.json_record(e, raw)).encode("utf-8", "surrogateescape"),
                        "application/json; charset=utf-8")

    def api_events(self, params: list[tuple[str, str]]) -> Response:
        """Server-sent events: each new mail the filters (and ``q``) select, as it arrives."""
        q = _param(params, "q")
        query = self.query_for(params)  # a bad filter is a 400 now, not a broken stream later
        if not self.streams.acquire(blocking=False):
            return Response(503, b"too many live pages open now\n", "text/plain; charset=utf-8",
                            [("Retry-After", "10")])

        def stream() -> Iterator[bytes]:
            reader, resolved_query = self.journal(query)
            filters, body = resolved_query.filters, body_of(self.source)
            try:
                new = follow(reader, filters, None, 0, body if filters.grep else None)
                # At the journal's tail before the page hears "open": a mail stored after that is sent.
                first = next(new)
                yield b"retry: 2000\n: new mail follows\n\n"
                for e in itertools.chain([first], new):
                    if self.stopping.is_set():
                        return
                    if e is None:
                        yield b": idle\n\n"  # a closed page shows here, as a failed write
                    elif not q or indexed.search_matches(e, q, functools.partial(body, e)):
                        rec = render.json_record(e)
                        rec.update(unit=e.unit, size_text=render.human_size(e.size),
                                   local_time=render.local_time(e.realtime))
                        yield b"event: mail\ndata: " + render.json_line(rec).encode("utf-8", "replace") + b"\n"
            finally:
                reader.close()

        return Response(200, Held(stream(), self.streams), "text/event-stream; charset=utf-8")

    def static(self, params: list[tuple[str, str]], name: str) -> Response:
        if name not in STATIC:
            raise NotFound(f"no file {name}")
        with open(os.path.join(HERE, "static", name), "rb") as f:
            return Response(200, f.read(), STATIC[name])


class Held:
    """A stream that gives its slot back when it ends, or is closed before it began."""

    def __init__(self, body: Iterator[bytes], slot: threading.BoundedSemaphore) -> None:
        self.body, self.slot = body, slot
        self.held = True

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self.body)

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                close()
        finally:
            if self.held:
                self.held = False
                self.slot.release()


def forwarder_said(what: str, arg: str) -> list[Any]:
    """What the forwarder logged (``forward.decided.for_mail`` or ``running_silences``), from the local
    journal it logs to; nothing when that cannot be read (a user outside systemd-journal sees only
    their own entries)."""
    from ..forward import decided

    try:
        reader = open_reader(Source())
    except (OSError, JournalSendmailError):
        return []
    try:
        return getattr(decided, what)(reader, arg)  # type: ignore[no-any-return]
    finally:
        reader.close()


def _bounded(key: str, value: str) -> str:
    """A filter's value as the web takes it: text, never a regular expression (one from a
    query string could run for minutes with the GIL held: ``(a*)*c``).  ``grep`` is then
    a literal search (smart case, as ``-g``), ``subject`` a substring, as without slashes.

    >>> print(_bounded("grep", "a.b*"), _bounded("grep", "Disk"), _bounded("host", "/x/"))
    /(?i)a\\.b\\*/ /Disk/ /x/
    """
    if key not in ("grep", "subject"):
        return value
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        raise UsageError(f"{key}: the web inbox searches for text, not /regular expressions/ "
                         f"(journal-mail list --{key} takes one)")
    if key == "subject":
        return value
    return "/" + ("" if any(c.isupper() for c in value) else "(?i)") + re.escape(value) + "/"


def _param(params: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in reversed(params) if k == name), "").strip()


def _page(params: list[tuple[str, str]]) -> int:
    text = _param(params, "page") or "0"
    if not text.isdigit() or int(text) > MAX_PAGE:
        raise UsageError(f"page must be a number from 0 to {MAX_PAGE}")
    return int(text)


def query_string(params: list[tuple[str, str]], **change: str | None) -> str:
    """The list's parameters with ``change`` made (None removes one), as ``?…``."""
    keep = [(k, v) for k, v in params if k not in change and v and k != "page"]
    keep += [(k, v) for k, v in change.items() if v]
    return "?" + urlencode(keep) if keep else "?"


def link(key: str, value: str) -> str:
    """The list filtered by one value (a host, caller, uid …)."""
    return "/?" + urlencode([(key, value)])


def _html_part(msg: Any) -> Any:
    try:
        return msg.get_body(preferencelist=("html",))
    except Exception:
        return None


def _is_body(msg: Any, html_part: Any) -> bool:
    """Is the HTML part the body the reader shows (no plain text to prefer)?"""
    try:
        return msg.get_body(preferencelist=("plain", "html")) is html_part
    except Exception:
        return False



