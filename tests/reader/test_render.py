"""Unit tests of the pure parts of the reader: render's formatters, time parsing, filters."""

from __future__ import annotations

import io
import json
import mailbox
import re
import time
from pathlib import Path

import pytest
from kit.support import json_raw, mboxrd_unescape

from journal_sendmail.reader import cli, render, select
from journal_sendmail.reader.assemble import assemble
from journal_sendmail.reader.entry import MailEntry
from journal_sendmail.reader.errors import DamagedMail
from journal_sendmail.reader.filters import Filters
from journal_sendmail.reader.output import Io
from journal_sendmail.reader.timespec import parse_time

DATA = Path(__file__).resolve().parents[1] / "data" / "reader"


def entry(**kw: object) -> MailEntry:
    base: dict[str, object] = dict(
        mail_id="0123456789abcdef0123456789abcdef",
        realtime=1795168801_000000,
        cursor="s=1;i=2",
        envelope_from="root",
        recipients=("root", "ops@example.org"),
        headers={"subject": "Cron <root@web1> run-parts /etc/cron.daily", "from": "root (Cron Daemon)"},
        size=1234,
        sha256="ab" * 32,
        uid=0,
        username="root",
        hostname="web1",
        caller_comm="cron",
        caller_pid=77,
        argv=("/usr/sbin/sendmail", "-FCronDaemon", "-i", "root"),
        invoked_as="sendmail",
    )
    base.update(kw)
    return MailEntry(**base)  # type: ignore[arg-type]


# -- the table ------------------------------------------------------------------


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 200], ids=lambda w: f"width{w}")
def test_table_lines_fit_the_terminal_width(width: int) -> None:
    cols = render.layout(width)
    e = entry(headers={"subject": "x" * 300}, recipients=("a" * 50,), hostname="h" * 40)
    for line in (render.table_header(cols), render.table_line(e, cols)):
        assert len(line) <= max(width, 40), line
    assert render.table_line(e, cols).endswith("…")


def test_table_without_terminal_keeps_the_whole_subject() -> None:
    line = render.table_line(entry(headers={"subject": "s" * 300}), render.layout(None))
    assert line.endswith("s" * 300)


def test_table_line_shows_the_columns() -> None:
    line = render.table_line(entry(), render.layout(200))
    for text in ("01234567", "web1", "root", "cron", "ops@example.org", "1.2K", "Cron <root@web1>"):
        assert text in line
    assert render.local_time(1795168801_000000) in line


@pytest.mark.parametrize(
    ("kw", "mark"),
    [
        ({"kind": "refused"}, "[refused]"),
        ({"spooled": True}, "[spooled]"),
        ({"truncated": 999_999}, "[truncated]"),
    ],
    ids=["refused", "spooled", "truncated"],
)
def test_table_marks_special_mail(kw: dict[str, object], mark: str) -> None:
    assert mark in render.table_line(entry(**kw), render.layout(None))


def test_colour_only_when_asked() -> None:
    cols = render.layout(100)
    assert "\x1b[" not in render.table_header(cols) + render.table_line(entry(kind="refused"), cols)
    assert render.table_header(cols, color=True).startswith(render.BOLD)
    assert render.table_line(entry(kind="refused"), cols, color=True).startswith(render.RED)


def test_control_characters_never_reach_the_terminal() -> None:
    e = entry(headers={"subject": "a\x1b]0;owned\x07b\nc"})
    line = render.table_line(e, render.layout(None))
    assert "\x1b" not in line and "\x07" not in line and "\n" not in line


# -- show -------------------------------------------------------------------------

SHOW_CASES = [
    ("qp-latin1.eml", ["Grüße aus Köln, die Platte ist zu 99% voll. Weiter.", "Subject: Grüße aus Köln", "Jürgen"]),
    ("base64-utf8.eml", ["Привет, backup finished: 42 files ✓"]),
    ("multipart-attachment.eml", ["plain part wins", "[attachment: dump.bin, application/octet-stream, 1.0K]"]),
]


@pytest.mark.parametrize(("name", "wanted"), SHOW_CASES, ids=[c[0] for c in SHOW_CASES])
def test_show_decodes_like_a_mail_reader(name: str, wanted: list[str]) -> None:
    raw = (DATA / name).read_bytes()
    text = render.show_text(entry(size=len(raw)), raw)
    for w in wanted:
        assert w in text
    assert "=FC" not in text and "0L/RgNC4" not in text  # no raw QP, no raw base64
    assert "\x1b" not in text


def test_show_strips_terminal_escapes() -> None:
    raw = (DATA / "escape-sequences.eml").read_bytes()
    text = render.show_text(entry(), raw) + render.headers_text(raw)
    assert "\x1b" not in text and "\x07" not in text
    assert "cleared?" in text


def test_show_envelope_part() -> None:
    e = entry(spooled=True, spool_uid=33, submitted_at="2026-11-20T10:00:00Z")
    text = render.show_text(e, b"Subject: x\n\nb\n")
    for w in ("Mail-Id: 0123456789abcdef0123456789abcdef", "User: 0 (root)", "Caller: cron [77]", "Spooled: yes"):
        assert w in text


def test_headers_shows_every_header_decoded() -> None:
    raw = (DATA / "qp-latin1.eml").read_bytes()
    text = render.headers_text(raw)
    assert "Content-Transfer-Encoding: quoted-printable" in text
    assert "Subject: Grüße aus Köln" in text
    assert "Gr=FC" not in text  # no body


# -- mbox -------------------------------------------------------------------------

MBOX_CASES = [
    b"Subject: a\n\nFrom the start\n>From quoted\n>>From twice\n",
    b"Subject: no final newline\n\nFrom",
    b"From someone@example.org Fri Nov 20 10:00:00 2026\nSubject: unix from line\n\nx\n",
    b"Subject: crlf\r\n\r\nFrom here\r\n",
    bytes(range(256)),
]


@pytest.mark.parametrize("raw", MBOX_CASES, ids=["from-lines", "no-final-newline", "unixfrom", "crlf", "binary"])
def test_mboxrd_is_reversible(raw: bytes) -> None:
    escaped = render.mboxrd_escape(raw)
    assert not re.search(rb"(?m)^From ", escaped)
    assert mboxrd_unescape(escaped) == raw


def test_mbox_is_readable_by_python_mailbox(tmp_path: Path) -> None:
    raws = [(DATA / n).read_bytes() for n in ("from-lines.eml", "qp-latin1.eml", "multipart-attachment.eml")]
    path = tmp_path / "out.mbox"
    path.write_bytes(b"".join(render.mbox_message(entry(mail_id=f"{i:032x}"), r) for i, r in enumerate(raws)))
    box = mailbox.mbox(str(path))
    try:
        got = list(box)
        assert [m["subject"] for m in got] == [mailbox.mboxMessage(r)["subject"] for r in raws]
        assert got[0].get_from().startswith("root ")
    finally:
        box.close()


def test_mbox_from_line_has_no_space_in_the_sender() -> None:
    assert render.mbox_from_line(entry(envelope_from="a b@x")).startswith(b"From ab@x ")
    assert render.mbox_from_line(entry(envelope_from="")).startswith(b"From MAILER-DAEMON ")


# -- JSON -------------------------------------------------------------------------

SHIM_FIELDS = {"time": str, "uid": str, "username": str, "arguments": list, "body": str}


def test_json_has_sendmail_shim_fields() -> None:
    rec = json.loads(render.json_line(render.json_record(entry(), b"Subject: x\n\nbody\n")))
    for name, kind in SHIM_FIELDS.items():
        assert isinstance(rec[name], kind), name
    assert rec["time"] == "2026-11-20T10:00:01Z"
    assert rec["uid"] == "0" and rec["username"] == "root"
    assert rec["arguments"] == ["-FCronDaemon", "-i", "root"]
    assert rec["body"] == "Subject: x\n\nbody\n"
    assert "body_base64" not in rec


def test_json_without_raw_has_no_body() -> None:
    assert "body" not in render.json_record(entry())


def test_json_keeps_binary_bodies_exact() -> None:
    raw = b"Subject: bin\n\n\xff\xfe\x00" + bytes(range(256))
    rec = json.loads(render.json_line(render.json_record(entry(), raw)))
    assert json_raw(rec) == raw
    assert "\ufffd" in rec["body"]


def test_json_schema_keys_are_stable() -> None:
    keys = set(render.json_record(entry()))
    assert {"mail_id", "timestamp", "hostname", "envelope_from", "recipients", "subject", "size", "sha256",
            "caller_comm", "spooled", "cursor", "schema"} <= keys


# -- stats ------------------------------------------------------------------------


def stats_rows(entries: list[MailEntry], by: str, sort: str = "count") -> list[tuple[str, int, int]]:
    """``stats``' rows of ``entries`` as ``select.counted`` counts a scan, in the table's order."""
    out = select.Counts({})
    select._count(out, entries, (by,))
    return render.stats_sorted(out.rows[by], by, sort)


def test_stats_count_and_bytes_sorted() -> None:
    mails = [
        entry(hostname="a", size=10),
        entry(hostname="b", size=1000),
        entry(hostname="b", size=1000),
        entry(hostname="c", size=5000),
    ]
    assert stats_rows(mails, "host") == [("b", 2, 2000), ("c", 1, 5000), ("a", 1, 10)]
    assert stats_rows(mails, "host", "bytes")[0] == ("c", 1, 5000)
    table = render.stats_table(stats_rows(mails, "host"), "host")
    assert "      4    6.8K  (total, 3 host values)" in table


def test_stats_by_recipient_counts_each_recipient() -> None:
    rows = stats_rows([entry(recipients=("a", "b")), entry(recipients=("a",))], "recipient")
    assert rows == [("a", 2, 2468), ("b", 1, 1234)]


# -- time and filters ---------------------------------------------------------------

NOW = time.mktime((2026, 11, 20, 12, 30, 0, 0, 0, -1))
TIME_CASES = [
    ("now", NOW),
    ("today", time.mktime((2026, 11, 20, 0, 0, 0, 0, 0, -1))),
    ("yesterday", time.mktime((2026, 11, 19, 0, 0, 0, 0, 0, -1))),
    ("tomorrow", time.mktime((2026, 11, 21, 0, 0, 0, 0, 0, -1))),
    ("-1h", NOW - 3600),
    ("+30min", NOW + 1800),
    ("2h 30min ago", NOW - 9000),
    ("2026-11-20 10:00", time.mktime((2026, 11, 20, 10, 0, 0, 0, 0, -1))),
    ("2026-11-20 10:00:05", time.mktime((2026, 11, 20, 10, 0, 5, 0, 0, -1))),
    ("2026-11-20T10:00:05", time.mktime((2026, 11, 20, 10, 0, 5, 0, 0, -1))),
    ("Fri 2026-11-20 10:00", time.mktime((2026, 11, 20, 10, 0, 0, 0, 0, -1))),
    ("2026-11-20", time.mktime((2026, 11, 20, 0, 0, 0, 0, 0, -1))),
    ("08:15", time.mktime((2026, 11, 20, 8, 15, 0, 0, 0, -1))),
    ("2026-11-20 10:00 UTC", 1795168800),
    ("@1795168800", 1795168800),
]


@pytest.mark.parametrize(("text", "want"), TIME_CASES, ids=[c[0] for c in TIME_CASES])
def test_journalctl_time_formats(text: str, want: float) -> None:
    assert parse_time(text, now=NOW) == int(want) * 1_000_000


@pytest.mark.parametrize("text", ["", "soon", "2026-13-01", "25:00", "-1 fortnight"], ids=repr)
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text, now=NOW)


def test_filters_become_journal_matches() -> None:
    f = Filters(senders=("root",), recipients=("a",), uids=(0, 1000), callers=("cron",), hosts=("web1",),
                boots=("b" * 32,), spooled=True, refused=True)
    # Matches of different fields are ANDed by sd-journal whatever their order (the attribute table's).
    assert sorted(f.matches()) == sorted([
        "MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172", "MESSAGE_ID=23042c0ef8f74902814ee4284e0a5521",
        "MAIL_RCPT=a", "MAIL_CALLER_COMM=cron",
        "_HOSTNAME=web1", f"_BOOT_ID={'b' * 32}", "MAIL_SPOOLED=yes",
    ])  # fmt: skip  (the user is looked at per mail: a spooled mail's is the spool file's owner)


def test_damaged_mail_is_detected_without_a_journal() -> None:
    raw = b"Subject: x\n\nbody\n"
    import hashlib

    good = entry(raw=raw, size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    assert assemble(good, lambda: None) == raw
    with pytest.raises(DamagedMail, match="SHA-256"):
        assemble(entry(raw=raw, size=len(raw), sha256="00" * 32), lambda: None)
    with pytest.raises(DamagedMail, match="bytes found"):
        assemble(entry(raw=raw[:-1], size=len(raw)), lambda: None)


def test_usage_errors_exit_64() -> None:
    err = io.BytesIO()
    io_ = Io(out=io.BytesIO(), err=err)
    assert cli.main(["list", "--bogus"], io_) == 64
    assert cli.main(["frobnicate"], io_) == 64
    assert cli.main(["list", "--subject", "/(/"], io_) == 64
    assert b"journal-mail:" in err.getvalue()
    assert cli.main(["--help"], Io(out=io.BytesIO(), err=io.BytesIO())) == 0
