"""Render: pure formatters from MailEntry (and raw bytes) to what is written.

Table lines fitted to a width, the text of ``show``, mbox (mboxrd), eml file
names, JSON lines and the stats table.  No I/O here: the CLI decides where
the output goes.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from ..printable import json_escaped
from ..printable import printable as _printable
from .attrs import group
from .entry import MailEntry

JSON_SCHEMA_VERSION = 1
BOLD, DIM, RED, RESET = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[0m"

def printable(text: str, one_line: bool = False) -> str:
    r"""``text`` with control characters (C0, C1, bidi) shown as ``�`` (and newlines as
    spaces): the one filter of both programs, ``journal_sendmail.printable``.

    >>> printable("a\x1b[2Jb\tc"), printable("x\ny", one_line=True)
    ('a�[2Jb\tc', 'x y')
    """
    return _printable(text, one_line)


def for_terminal(data: bytes) -> bytes:
    r"""Raw bytes (``show --raw``, mbox) as a terminal may get them: through ``printable``.

    >>> for_terminal(b"a\x1b]0;x\x07\r\nb\n")
    b'a\xef\xbf\xbd]0;x\xef\xbf\xbd\xef\xbf\xbd\nb\n'
    """
    return printable(data.decode("utf-8", "replace")).encode("utf-8")


def human_size(n: int) -> str:
    """Bytes in at most 5 characters: ``690``, ``1.2K``, ``30M``.

    >>> human_size(690), human_size(1229), human_size(31457280), human_size(10 * 1024)
    ('690', '1.2K', '30M', '10K')
    """
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            if not unit:
                return str(int(value))
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return str(n)  # pragma: no cover


def _when(us: int, fmt: str, utc: bool) -> str:
    """``us`` formatted; a time no calendar holds (a central journal takes the
    hosts' word for it) as ``@SECONDS`` instead of an error.

    >>> _when(10 ** 30, "%Y", True)
    '@1000000000000000000000000'
    """
    try:
        return time.strftime(fmt, (time.gmtime if utc else time.localtime)(us // 1_000_000))
    except (OverflowError, ValueError, OSError):
        return f"@{us // 1_000_000}"


def local_time(us: int, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return _when(us, fmt, utc=False)


def rfc3339(us: int) -> str:
    """UTC, whole seconds, as sendmail-shim wrote its ``time``.

    >>> rfc3339(1795168801500000)
    '2026-11-20T10:00:01Z'
    """
    return _when(us, "%Y-%m-%dT%H:%M:%SZ", utc=True)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with ``…`` when cut.

    >>> fit("abcdef", 4), fit("ab", 4)
    ('abc…', 'ab')
    """
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


# -- the list table -----------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    min: int
    max: int
    drop: int  # dropped first when the width is short: higher drops earlier
    right: bool = False


COLUMNS = (
    Column("TIME", 16, 16, 0),
    Column("ID", 8, 8, 2),
    Column("HOST", 6, 12, 4),
    Column("USER", 4, 10, 3),
    Column("CALLER", 4, 10, 5),
    Column("UNIT", 4, 16, 6),
    Column("FROM", 6, 20, 1),
    Column("TO", 6, 24, 1),
    Column("SIZE", 5, 5, 2, right=True),
    Column("SUBJECT", 10, 10_000, 0),
)


def layout(width: int | None) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown in ``width`` characters.

    Without a width (output is not a terminal) every column has its maximum
    and the subject is never cut.

    >>> [COLUMNS[i].title for i, _ in layout(60)]
    ['TIME', 'ID', 'FROM', 'TO', 'SUBJECT']
    >>> sum(w for _, w in layout(120)) + 2 * (len(layout(120)) - 1)
    120
    """
    cols = list(range(len(COLUMNS)))
    if width is None:
        return [(i, COLUMNS[i].max) for i in cols]

    def total(ws: dict[int, int]) -> int:
        return sum(ws.values()) + 2 * (len(ws) - 1)

    while True:
        ws = {i: COLUMNS[i].max for i in cols}
        ws[len(COLUMNS) - 1] = max(COLUMNS[-1].min, width // 4)  # the subject keeps a quarter
        # shrink the flexible columns, widest first, down to their minimum (the subject keeps its quarter)
        while total(ws) > width:
            flexible = [i for i in ws if ws[i] > COLUMNS[i].min and i != len(COLUMNS) - 1]
            if not flexible:
                break
            widest = max(flexible, key=lambda i: ws[i] - COLUMNS[i].min)
            ws[widest] -= 1
        if total(ws) <= width or len(cols) == 1:
            break
        cols.remove(max((i for i in cols if COLUMNS[i].drop), key=lambda i: (COLUMNS[i].drop, i)))
    last = len(COLUMNS) - 1
    ws[last] = max(COLUMNS[last].min, width - (total(ws) - ws[last]))
    return [(i, ws[i]) for i in cols]


def _cells(e: MailEntry) -> list[str]:
    user = e.username or (str(e.uid) if e.uid is not None else "?")
    marks = "".join(
        f"[{m}] "
        for m, on in (
            ("refused", e.kind == "refused"),
            ("spooled", e.spooled),
            ("truncated", e.truncated is not None),
            ("dup", e.duplicates > 0),
            ("damaged", bool(e.damaged)),
        )
        if on
    )
    return [
        local_time(e.realtime),
        e.mail_id[:8],
        e.hostname,
        user,
        f"({e.caller_comm})" if e.spooled and e.caller_comm else e.caller_comm,  # the spool file's claim
        e.unit,
        e.envelope_from,
        ",".join(e.recipients),
        "?" if e.damaged else human_size(e.size),
        marks + e.subject,
    ]


def table_header(cols: list[tuple[int, int]], color: bool = False) -> str:
    line = _row([c.title for c in COLUMNS], cols)
    return f"{BOLD}{line}{RESET}" if color else line


def table_line(e: MailEntry, cols: list[tuple[int, int]], color: bool = False) -> str:
    """One mail as a line of the table laid out by ``cols`` (see ``layout``)."""
    line = _row(_cells(e), cols, color and (e.kind == "refused" or e.truncated is not None or bool(e.damaged)))
    return line


def _row(cells: list[str], cols: list[tuple[int, int]], red: bool = False) -> str:
    out = []
    last = cols[-1][0]
    for i, w in cols:
        text = fit(printable(cells[i], one_line=True), w)
        if i == last:
            out.append(text)
        else:
            out.append(text.rjust(w) if COLUMNS[i].right else text.ljust(w))
    line = "  ".join(out)
    return f"{RED}{line}{RESET}" if red else line


# -- show ---------------------------------------------------------------------


SUMMARY_HEADERS = ("From", "To", "Cc", "Bcc", "Subject", "Date")


def envelope_lines(e: MailEntry) -> list[tuple[str, str]]:
    """What the journal knows about a mail besides the message itself."""
    caller = e.caller_comm + (f" [{e.caller_pid}]" if e.caller_pid is not None else "")
    caller += f" {e.caller_exe}" if e.caller_exe else ""
    claim = " (as the spool file says)" if e.spooled else " (as the sender says)"
    if caller.strip() and e.spooled:
        caller += claim
    user = str(e.uid) if e.uid is not None else "?"
    user += f" ({e.username})" if e.username else ""
    out = [
        ("Mail-Id", e.mail_id),
        ("Stored", local_time(e.realtime, "%Y-%m-%d %H:%M:%S %z")),
        ("Host", e.hostname),
        ("User", user),
        ("Caller", caller.strip()),
        ("Unit", e.unit),
        ("Caller-Unit", e.caller_unit + claim if e.caller_unit and e.caller_unit != e.unit else ""),
        ("Envelope-From", e.envelope_from),
        ("Recipients", ", ".join(e.recipients)),
        ("Size", f"{e.size} bytes" + (f" in {e.parts} parts" if e.parts > 1 else "")),
    ]
    if e.spooled:
        out.append(("Spooled", f"yes, submitted {e.submitted_at} by uid {e.spool_uid}"))
    if e.truncated is not None:
        out.append(("Truncated", f"yes, {e.truncated} bytes were received"))
    if e.refused:
        out.append(("Refused", e.refused))
    if e.defects:
        out.append(("Defects", "; ".join(e.defects)))
    if e.damaged:
        out.append(("Damaged", e.damaged))
    return [(k, v) for k, v in out if v]


def show_text(e: MailEntry, raw: bytes, all_headers: bool = False, color: bool = False) -> str:
    """A mail as a reader shows it: envelope, headers, decoded body, attachments."""
    msg = message(raw)
    name = (lambda s: f"{BOLD}{s}{RESET}") if color else (lambda s: s)
    dim = (lambda s: f"{DIM}{s}{RESET}") if color else (lambda s: s)
    out = [dim(f"{k}: {printable(v, one_line=True)}") for k, v in envelope_lines(e)]
    out.append("")
    for key, value in msg.raw_items():  # parsed only when shown
        if all_headers or key.title() in SUMMARY_HEADERS:
            value = msg.policy.header_fetch_parse(key, value)  # type: ignore[no-untyped-call]
            out.append(f"{name(key)}: {printable(header_text(value), one_line=True)}")
    out.append("")
    body, attachments = readable(msg)
    out.append(printable(body).rstrip("\n"))
    for label in attachments:
        out.append(dim(f"[attachment: {printable(label, one_line=True)}]"))
    return "\n".join(out) + "\n"


def message(raw: bytes, headersonly: bool = False) -> EmailMessage:
    """``raw`` parsed once, within the bounds (``headers.parse_message``)."""
    from ..headers import parse_message

    msg = parse_message(raw, headersonly)[0]
    assert isinstance(msg, EmailMessage)
    return msg


def header_text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a header the email package cannot even print
        return repr(value)


def readable(msg: Any) -> tuple[str, list[str]]:
    """The body to show (first text/plain, else text/html as is) and attachment labels."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    body = ""
    if part is not None:
        body = part_text(part)
    elif not msg.is_multipart():
        body = part_text(msg)
    labels = []
    try:
        attachments = list(msg.iter_attachments()) if msg.is_multipart() else []
    except Exception:
        attachments = []
    for a in attachments:
        if a is part:
            continue
        payload = a.get_payload(decode=True) or b""
        labels.append(f"{a.get_filename() or '(no name)'}, {a.get_content_type()}, {human_size(len(payload))}")
    return body, labels


def part_text(part: Any) -> str:
    try:
        content = part.get_content()
    except Exception:  # unknown charset, broken base64: show what is there
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return str(content)


def headers_text(raw: bytes) -> str:
    """Every header of the message, unfolded and decoded, one per line."""
    msg = message(raw, headersonly=True)
    return "".join(f"{k}: {printable(header_text(v), one_line=True)}\n" for k, v in msg.items())


# -- mbox and eml -------------------------------------------------------------

_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def mboxrd_escape(raw: bytes) -> bytes:
    r"""Quote ``From `` lines the mboxrd way: one more ``>`` before ``>*From ``.

    >>> mboxrd_escape(b"a\nFrom x\n>From y\n")
    b'a\n>From x\n>>From y\n'
    """
    return _FROM_LINE.sub(rb">\1", raw)


def mbox_from_line(e: MailEntry) -> bytes:
    """``From sender Fri Nov 20 10:00:01 2026`` (UTC, asctime) for the mbox separator."""
    sender = "".join(e.envelope_from.split()) or "MAILER-DAEMON"
    when = _when(e.realtime, "%a %b %d %H:%M:%S %Y", utc=True)
    return f"From {sender} {when}\n".encode("utf-8", "surrogateescape")


def mbox_message(e: MailEntry, raw: bytes) -> bytes:
    """One mbox (mboxrd) message: separator, quoted raw bytes, one empty line.

    A message that does not end with a newline gets one before the empty line.
    """
    body = mboxrd_escape(raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return mbox_from_line(e) + body + b"\n"


def eml_name(e: MailEntry) -> str:
    """A file name for one mail: stored time (UTC) and MAIL_ID, so names sort by time.

    >>> eml_name(MailEntry(mail_id="ab" * 16, realtime=1795168801000000))
    '20261120T100001Z-abababababababababababababababab.eml'
    """
    safe = re.sub(r"[^0-9A-Za-z]", "_", e.mail_id) or "unknown"
    return _when(e.realtime, "%Y%m%dT%H%M%SZ", utc=True) + f"-{safe}.eml"


# -- JSON ---------------------------------------------------------------------


def json_record(e: MailEntry, raw: bytes | None = None) -> dict[str, Any]:
    """One mail as a JSON object (schema version 1, documented in journal-mail(1)).

    ``time``, ``uid``, ``username``, ``arguments`` and ``body`` are those of
    sendmail-shim's log lines; ``body`` (and ``body_base64`` when the bytes
    are not UTF-8) is there only when ``raw`` is given.
    """
    rec: dict[str, Any] = {
        "time": rfc3339(e.realtime),
        "uid": str(e.uid) if e.uid is not None else None,
        "username": e.username,
        "arguments": list(e.argv[1:]),
        "schema": JSON_SCHEMA_VERSION,
        "mail_id": e.mail_id,
        "timestamp": e.realtime,
        "kind": e.kind,
        "hostname": e.hostname,
        "boot_id": e.boot_id,
        "envelope_from": e.envelope_from,
        "recipients": list(e.recipients),
        "from": e.headers.get("from"),
        "to": e.headers.get("to"),
        "cc": e.headers.get("cc"),
        "bcc": e.headers.get("bcc"),
        "subject": e.headers.get("subject"),
        "date": e.headers.get("date"),
        "message_id": e.headers.get("message_id"),
        "auto_submitted": e.headers.get("auto_submitted"),
        "size": None if e.damaged else e.size,
        "sha256": None if e.damaged else e.sha256,
        "parts": None if e.damaged else e.parts,
        "duplicates": e.duplicates,
        "invoked_as": e.invoked_as,
        "caller_comm": e.caller_comm or None,
        "caller_pid": e.caller_pid,
        "caller_exe": e.caller_exe or None,
        "unit": e.unit or None,
        "caller_unit": e.caller_unit or None,
        "systemd_unit": e.systemd_unit or None,
        "spooled": e.spooled,
        "truncated": e.truncated,
        "refused": e.refused or None,
        "defects": list(e.defects),
        "damaged": e.damaged or None,
        "cursor": e.cursor,
    }
    if e.spooled:
        rec["spool_uid"] = e.spool_uid
        rec["submitted_at"] = e.submitted_at
        rec["claimed"] = ["caller_comm", "caller_pid", "caller_exe", "caller_unit"]  # the spool file's word
    if raw is not None:
        try:
            rec["body"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            rec["body"] = raw.decode("utf-8", "replace")
            rec["body_base64"] = base64.b64encode(raw).decode("ascii")
    return rec


def json_note(s: Any) -> dict[str, Any]:
    """journald's word that it dropped messages of a unit that sent mail (``kind`` "note")."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "kind": "note",
        "time": rfc3339(s.realtime),
        "timestamp": s.realtime,
        "hostname": s.hostname,
        "unit": s.unit,
        "suppressed": s.dropped,
        "note": f"journald suppressed {s.dropped} messages from {s.unit} (its rate limit): "
                "mail it sent then may be lost",
    }


def json_line(rec: dict[str, Any]) -> str:
    """One JSON object on one line (UTF-8, no ASCII escaping), with the newline."""
    return json_escaped(json.dumps(rec, ensure_ascii=False, separators=(",", ":"))) + "\n"


# -- stats --------------------------------------------------------------------

STATS_KEYS = ("host", "sender", "recipient", "caller", "unit", "subject", "day", "user")


def stats_keys(e: MailEntry, by: str) -> list[str]:
    """The group(s) one mail counts in (``attrs``): a mail counts once per recipient."""
    if by == "day":
        return [local_time(e.realtime, "%Y-%m-%d")]  # only when asked: the index counts every mail by five keys
    return [k or "(none)" for k in group(e, by)] or ["(none)"]


def stats_sorted(rows: list[tuple[str, int, int]], by: str, sort: str = "count") -> list[tuple[str, int, int]]:
    """Counted groups in the order the table shows them.

    >>> stats_sorted([("a", 1, 9), ("b", 2, 1), ("c", 2, 5)], "host")
    [('c', 2, 5), ('b', 2, 1), ('a', 1, 9)]
    """
    if by == "day":
        return sorted(rows)
    if sort == "bytes":
        return sorted(rows, key=lambda r: (-r[2], -r[1], r[0]))
    return sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))


def stats_table(rows: list[tuple[str, int, int]], by: str, width: int | None = None) -> str:
    """The stats as a table: count, bytes, key; a total line last."""
    head = f"{'MAILS':>7}  {'BYTES':>6}  {by.upper()}"
    lines = [head]
    for key, count, size in rows:
        line = f"{count:>7}  {human_size(size):>6}  {printable(key, one_line=True)}"
        lines.append(fit(line, width) if width else line)
    total_count = sum(r[1] for r in rows)
    total_bytes = sum(r[2] for r in rows)
    lines.append(f"{total_count:>7}  {human_size(total_bytes):>6}  (total, {len(rows)} {by} values)")
    return "\n".join(lines) + "\n"
