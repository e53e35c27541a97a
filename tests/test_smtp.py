"""SMTP on stdin (-bs): the state machine, its I/O loop, and the program end to end."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kit import harness

from journal_sendmail import smtp
from journal_sendmail.errors import SpoolError
from journal_sendmail.message import Raw


@dataclass
class Stored:
    env: smtp.Envelope
    data: bytes
    refused: str | None


@dataclass
class FakeStore:
    """store() that keeps what it was given; ``fail`` makes it raise like a full spool."""

    stored: list[Stored] = field(default_factory=list)
    fail: bool = False
    refuse: bool = False

    def __call__(self, env: smtp.Envelope, raw: Raw, refused: str | None) -> str | None:
        if self.fail:
            raise SpoolError("journal gone; and the spool failed: disk full")
        self.stored.append(Stored(env, raw.read_all(), refused))
        return None if self.refuse else f"ID{len(self.stored)}"


def session(store: FakeStore | None = None, **kw: int) -> tuple[smtp.Session, FakeStore]:
    store = store or FakeStore()
    return smtp.Session(store, hostname="test.host", **kw), store


def codes(replies: bytes) -> list[str]:
    """The reply codes of a reply stream, one per reply (not per line)."""
    return [line[:3].decode() for line in replies.split(b"\r\n") if line[3:4] == b" "]


def talk(lines: list[str], **kw: int) -> tuple[list[str], smtp.Session, FakeStore]:
    s, store = session(**kw)
    out = b"".join(s.receive(line.encode() + b"\r\n") for line in lines)
    return codes(out), s, store


MAIL = "MAIL FROM:<a@x>"
RCPT = "RCPT TO:<b@y>"

COMMANDS = [
    pytest.param(["HELO client"], ["250"], id="helo"),
    pytest.param(["EHLO client"], ["250"], id="ehlo"),
    pytest.param(["ehlo client"], ["250"], id="lower-case-verb"),
    pytest.param(["HELO [127.0.0.1]"], ["250"], id="helo-address-literal"),
    pytest.param(["NOOP"], ["250"], id="noop"),
    pytest.param(["NOOP anything"], ["250"], id="noop-with-argument"),
    pytest.param(["RSET"], ["250"], id="rset"),
    pytest.param(["VRFY root"], ["252"], id="vrfy"),
    pytest.param(["EXPN staff"], ["502"], id="expn"),
    pytest.param(["HELP"], ["214"], id="help"),
    pytest.param(["QUIT"], ["221"], id="quit"),
    pytest.param([MAIL, RCPT, "DATA"], ["250", "250", "354"], id="without-helo"),
    pytest.param([MAIL, RCPT, RCPT, "RCPT TO:<c@z>"], ["250"] * 4, id="several-rcpt"),
    pytest.param(["MAIL FROM:<>", RCPT, "DATA"], ["250", "250", "354"], id="null-sender"),
    pytest.param(["MAIL FROM: <a@x>", "RCPT TO: <b@y>"], ["250", "250"], id="space-after-colon"),
    pytest.param(["MAIL FROM:a@x", "RCPT TO:b@y"], ["250", "250"], id="no-angle-brackets"),
    pytest.param(["MAIL FROM:<a@x> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=Q1"], ["250"], id="mail-params"),
    pytest.param([MAIL, "RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y"], ["250", "250"], id="rcpt-params"),
    pytest.param([MAIL, "RCPT TO:<b@y> NOTIFY=NEVER"], ["250", "250"], id="notify-never"),
    pytest.param(["MAIL FROM:<ü@x> SMTPUTF8", "RCPT TO:<ö@y>"], ["250", "250"], id="smtputf8"),
    pytest.param(["MAIL FROM:<a@x>", "RCPT TO:<Postmaster>"], ["250", "250"], id="postmaster"),
    pytest.param([MAIL, "RCPT TO:<@relay:b@y>"], ["250", "250"], id="source-route"),
    pytest.param([MAIL, 'RCPT TO:<"b >y"@z>'], ["250", "250"], id="quoted-local-part"),
]

BAD_SEQUENCES = [
    pytest.param([RCPT], ["503"], id="rcpt-before-mail"),
    pytest.param(["DATA"], ["503"], id="data-before-mail"),
    pytest.param([MAIL, "DATA"], ["250", "554"], id="data-without-rcpt"),
    pytest.param([MAIL, MAIL], ["250", "503"], id="nested-mail"),
    pytest.param([MAIL, "RSET", RCPT], ["250", "250", "503"], id="rset-ends-transaction"),
    pytest.param([MAIL, "HELO c", RCPT], ["250", "250", "503"], id="helo-ends-transaction"),
    pytest.param([MAIL, "RCPT TO:<>", "DATA"], ["250", "501", "554"], id="only-bad-rcpt-then-data"),
]

SYNTAX = [
    pytest.param(["FOO"], ["500"], id="unknown-command"),
    pytest.param([""], ["500"], id="empty-line"),
    pytest.param(["MAIL\x00FROM:<a>"], ["500"], id="nul-in-verb"),
    pytest.param(["STARTTLS"], ["502"], id="starttls"),
    pytest.param(["AUTH PLAIN AGFAAGI="], ["502"], id="auth"),
    pytest.param(["BDAT 10 LAST"], ["502"], id="bdat"),
    pytest.param(["HELO"], ["501"], id="helo-without-name"),
    pytest.param(["EHLO"], ["501"], id="ehlo-without-name"),
    pytest.param(["MAIL"], ["501"], id="mail-without-from"),
    pytest.param(["MAIL TO:<a@x>"], ["501"], id="mail-to"),
    pytest.param(["MAIL FROM:<a@x"], ["501"], id="mail-unclosed-bracket"),
    pytest.param(["MAIL FROM:"], ["501"], id="mail-no-address"),
    pytest.param(["MAIL FROM:<a@x>SIZE=1"], ["501"], id="mail-no-space-before-param"),
    pytest.param(["MAIL FROM:<a@x> FOO=1"], ["555"], id="mail-unknown-param"),
    pytest.param(["MAIL FROM:<a@x> NOTIFY=NEVER"], ["555"], id="mail-rcpt-only-param"),
    pytest.param(["MAIL FROM:<a@x> SIZE=ten"], ["501"], id="size-not-a-number"),
    pytest.param(["MAIL FROM:<a@x> SIZE="], ["501"], id="size-empty"),
    pytest.param(["MAIL FROM:<a@x> SIZE=1 SIZE=2"], ["501"], id="param-twice"),
    pytest.param(["MAIL FROM:<a@x> SIZE=99999999999"], ["552"], id="size-too-big"),
    pytest.param(["MAIL FROM:<a@x> BODY=BINARYMIME"], ["501"], id="body-binarymime"),
    pytest.param(["MAIL FROM:<a@x> SMTPUTF8=yes"], ["501"], id="smtputf8-with-value"),
    pytest.param(["MAIL FROM:<a@x> RET=ALL"], ["501"], id="bad-ret"),
    pytest.param(["MAIL FROM:<a@x> ENVID=a\x01b"], ["501"], id="bad-envid"),
    pytest.param(["MAIL FROM:<ü@x>"], ["553"], id="utf8-sender-without-smtputf8"),
    pytest.param([MAIL, "RCPT TO:<ü@y>"], ["250", "553"], id="utf8-rcpt-without-smtputf8"),
    pytest.param([MAIL, "RCPT"], ["250", "501"], id="rcpt-without-to"),
    pytest.param([MAIL, "RCPT TO:<>"], ["250", "501"], id="rcpt-empty"),
    pytest.param([MAIL, "RCPT TO:<b@y> NOTIFY=SOMETIMES"], ["250", "501"], id="bad-notify"),
    pytest.param([MAIL, "RCPT TO:<b@y> ORCPT=b@y"], ["250", "501"], id="orcpt-without-type"),
    pytest.param([MAIL, "RCPT TO:<b@y> SIZE=1"], ["250", "555"], id="rcpt-mail-only-param"),
    pytest.param([MAIL, "RCPT TO:<b\ty@z>"], ["250", "501"], id="rcpt-control-char"),
    pytest.param([MAIL, RCPT, "DATA now"], ["250", "250", "501"], id="data-with-argument"),
    pytest.param(["RSET all"], ["501"], id="rset-with-argument"),
    pytest.param(["VRFY"], ["501"], id="vrfy-without-argument"),
]


@pytest.mark.parametrize(("lines", "expected"), COMMANDS + BAD_SEQUENCES + SYNTAX)
def test_reply_codes(lines: list[str], expected: list[str]) -> None:
    got, s, store = talk(lines)
    assert got == expected
    assert store.stored == []
    assert s.closed == (lines[-1] == "QUIT")


def test_greeting() -> None:
    s, _ = session()
    assert s.greeting() == b"220 test.host ESMTP journal-sendmail\r\n"


def test_ehlo_advertises_exactly_the_extensions() -> None:
    s, _ = session(max_size=12345)
    lines = s.receive(b"EHLO client.example\r\n").decode().split("\r\n")
    assert lines[0] == "250-test.host"
    assert all(line.startswith("250-") for line in lines[:-2]) and lines[-2].startswith("250 ")
    keywords = {line[4:] for line in lines[1:-1]}
    assert keywords == {"PIPELINING", "SIZE 12345", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"}


def test_helo_does_not_advertise() -> None:
    s, _ = session()
    assert s.receive(b"HELO c\r\n") == b"250 test.host\r\n"


def test_help_is_multiline_214() -> None:
    s, _ = session()
    lines = s.receive(b"HELP\r\n").split(b"\r\n")[:-1]
    assert len(lines) > 1 and all(line.startswith(b"214") for line in lines)
    assert [line[3:4] for line in lines] == [b"-"] * (len(lines) - 1) + [b" "]


def test_too_many_recipients_is_452() -> None:
    got, _, _ = talk([MAIL, RCPT, "RCPT TO:<c@z>", "RCPT TO:<d@z>"], max_recipients=2)
    assert got == ["250", "250", "250", "452"]


def test_too_many_errors_end_the_session() -> None:
    s, _ = session(max_errors=3)
    out = s.receive(b"x\r\ny\r\nz\r\nNOOP\r\n")
    assert codes(out) == ["500", "500", "500", "421"]
    assert s.closed


def test_overlong_command_line_is_500_and_the_session_goes_on() -> None:
    s, _ = session()
    out = s.receive(b"NOOP " + b"x" * (smtp.MAX_COMMAND_LINE + 10))
    out += s.receive(b"x" * 5000 + b"\r\nNOOP\r\n")
    assert codes(out) == ["500", "250"]


def test_commands_after_quit_are_ignored() -> None:
    got, s, _ = talk(["QUIT", "NOOP"])
    assert got == ["221"] and s.closed


# -- DATA ----------------------------------------------------------------

DOTS = [
    # (bytes after the 354, the message stored)
    pytest.param(b"Subject: s\r\n\r\nhello\r\n.\r\n", b"Subject: s\r\n\r\nhello\r\n", id="crlf"),
    pytest.param(b"Subject: s\n\nhello\n.\n", b"Subject: s\n\nhello\n", id="bare-lf"),
    pytest.param(b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n", id="stuffed-lone-dot"),
    pytest.param(b"a\r\n...x\r\n.\r\n", b"a\r\n..x\r\n", id="stuffed-dots"),
    pytest.param(b"..first\r\n.\r\n", b".first\r\n", id="stuffed-first-line"),
    pytest.param(b"a\n.x\n.\n", b"a\nx\n", id="unstuffed-leading-dot-dropped"),
    pytest.param(b"a\r\n. \r\nb\r\n.\r\n", b"a\r\n \r\nb\r\n", id="dot-space-not-end"),
    pytest.param(b"a.\r\n.b.\r\n.\r\n", b"a.\r\nb.\r\n", id="dots-inside-lines"),
    pytest.param(b"8bit \xe9\xff\x00 nul\r\n.\r\n", b"8bit \xe9\xff\x00 nul\r\n", id="8bit-and-nul"),
    pytest.param(b".\r\n", b"", id="empty-message"),
    pytest.param(b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n", id="dot-cr-not-end"),
    pytest.param(b"no end of line\r\n.\n", b"no end of line\r\n", id="mixed-line-ends"),
]


@pytest.mark.parametrize("step", [1, 2, 3, 1 << 20], ids=lambda s: f"step{s}")
@pytest.mark.parametrize(("wire", "stored"), DOTS)
def test_dot_unstuffing(wire: bytes, stored: bytes, step: int) -> None:
    s, store = session()
    assert codes(s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\n".encode())) == ["250", "250", "354"]
    out = b"".join(s.receive(wire[i:i + step]) for i in range(0, len(wire), step))
    out += s.receive(b"NOOP\r\n")
    assert codes(out) == ["250", "250"]
    assert [m.data for m in store.stored] == [stored]


def test_message_over_max_size_is_552_and_not_stored() -> None:
    s, store = session(max_size=100, part_size=4096)
    out = s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\n".encode() + b"x" * 200 + b"\r\n.\r\nNOOP\r\n")
    assert codes(out) == ["250", "250", "354", "552", "250"]
    assert store.stored == []


def test_message_of_exactly_max_size_is_stored() -> None:
    s, store = session(max_size=100, part_size=4096)
    out = s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\n".encode() + b"x" * 98 + b"\r\n.\r\n")
    assert codes(out) == ["250", "250", "354", "250"]
    assert len(store.stored[0].data) == 100


def test_big_message_is_staged_past_part_size() -> None:
    body = b"".join(b"%07d .dot\r\n" % i for i in range(100_000))  # 1.2 MB
    s, store = session(part_size=4096)
    wire = f"{MAIL}\r\n{RCPT}\r\nDATA\r\n".encode() + body.replace(b"\n.", b"\n..") + b".\r\n"
    out = b"".join(s.receive(wire[i:i + 65536]) for i in range(0, len(wire), 65536))
    assert codes(out) == ["250", "250", "354", "250"]
    assert store.stored[0].data == body


def test_store_failure_is_451_and_the_session_goes_on() -> None:
    store = FakeStore(fail=True)
    s, _ = session(store)
    out = s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\n".encode() + b"x\r\n.\r\n")
    assert codes(out) == ["250", "250", "354", "451"]
    assert b"disk full" in out
    store.fail = False
    out = s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\nx\r\n.\r\nQUIT\r\n".encode())
    assert codes(out) == ["250", "250", "354", "250", "221"]
    assert (s.failed, s.stored) == (1, 1)


def test_no_recipient_left_after_store_is_554() -> None:
    s, _ = session(FakeStore(refuse=True))
    out = s.receive(f"{MAIL}\r\n{RCPT}\r\nDATA\r\nx\r\n.\r\n".encode())
    assert codes(out) == ["250", "250", "354", "554"]


# -- several messages, pipelining, the envelope ------------------------------

PIPELINED = (
    b"EHLO client\r\n"
    b"MAIL FROM:<a@x> SIZE=40 BODY=8BITMIME\r\nRCPT TO:<b@y> NOTIFY=FAILURE\r\nRCPT TO:<c@z>\r\nDATA\r\n"
    b"Subject: one\r\n\r\n..one\r\n.\r\n"
    b"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<bad\tx>\r\nRCPT TO:<d@w>\r\nDATA\r\n"
    b"Subject: two\r\n\r\ntwo\r\n.\r\n"
    b"QUIT\r\n"
)


@pytest.mark.parametrize("step", [1, 5, len(PIPELINED)], ids=["byte", "five", "all-at-once"])
def test_pipelined_session_two_messages(step: int) -> None:
    s, store = session()
    out = b"".join(s.receive(PIPELINED[i:i + step]) for i in range(0, len(PIPELINED), step))
    assert codes(out) == ["250", "250", "250", "250", "354", "250", "250", "250", "501", "250", "354", "250", "221"]
    assert out.count(b"queued as") == 2 and b"queued as ID1" in out and b"queued as ID2" in out
    assert s.closed
    one, two = store.stored
    assert one.data == b"Subject: one\r\n\r\n.one\r\n" and one.refused is None
    assert one.env.sender == "a@x" and one.env.recipients == ["b@y", "c@z"]
    assert one.env.helo == "client" and one.env.esmtp
    assert dict(one.env.fields()) == {
        "MAIL_PROTOCOL": b"ESMTP",
        "MAIL_SMTP_HELO": b"client",
        "MAIL_SMTP_MAIL_PARAMS": b"SIZE=40 BODY=8BITMIME",
        "MAIL_SMTP_RCPT_PARAMS": b"<b@y> NOTIFY=FAILURE",
    }
    assert two.data == b"Subject: two\r\n\r\ntwo\r\n"
    assert two.env.sender == "" and two.env.recipients == ["d@w"]
    assert dict(two.env.fields()) == {"MAIL_PROTOCOL": b"ESMTP", "MAIL_SMTP_HELO": b"client"}


def test_helo_session_is_smtp_protocol() -> None:
    _, _, store = talk(["HELO c", MAIL, RCPT, "DATA", "x", "."])
    assert store.stored[0].env.fields() == [("MAIL_PROTOCOL", b"SMTP"), ("MAIL_SMTP_HELO", b"c")]


def test_without_helo_no_helo_field() -> None:
    _, _, store = talk([MAIL, RCPT, "DATA", "x", "."])
    assert store.stored[0].env.fields() == [("MAIL_PROTOCOL", b"SMTP")]


# -- sessions that end without QUIT -----------------------------------------


def test_eof_without_quit_keeps_accepted_messages() -> None:
    got, s, store = talk([MAIL, RCPT, "DATA", "kept", ".", MAIL, RCPT])
    assert got == ["250", "250", "354", "250", "250", "250"]
    assert s.eof() == b""
    assert s.closed
    assert [(m.data, m.refused) for m in store.stored] == [(b"kept\r\n", None)]


def test_eof_in_data_records_what_came_as_refused() -> None:
    got, s, store = talk([MAIL, RCPT, "DATA", "half a message"])
    assert got == ["250", "250", "354"]
    s.receive(b"\r\n.")  # a dot line that never ended
    s.eof()
    assert [m.refused for m in store.stored] == ["the SMTP session ended before the final dot of DATA"]
    assert store.stored[0].data == b"half a message\r\n\r\n"


def test_eof_right_after_354_records_nothing() -> None:
    _, s, store = talk([MAIL, RCPT, "DATA"])
    s.eof()
    assert store.stored == []


def test_timeout_is_421() -> None:
    s, _ = session()
    assert codes(s.timeout()) == ["421"] and s.closed


# -- the I/O loop -----------------------------------------------------------


def run_serve(s: smtp.Session, server: socket.socket, timeout: float = 10) -> threading.Thread:
    t = threading.Thread(target=smtp.serve, args=(s, server.fileno(), server.fileno(), timeout), daemon=True)
    t.start()
    return t


def read_reply(sock: socket.socket) -> bytes:
    """One complete reply (all its lines) from ``sock``."""
    data = b""
    while True:
        data += sock.recv(1)
        if data.endswith(b"\r\n") and (len(data) < 6 or data.split(b"\r\n")[-2][3:4] == b" "):
            return data


def test_serve_lock_step_flushes_each_reply_before_reading() -> None:
    """A client that waits for each reply deadlocks unless replies are flushed."""
    client, server = socket.socketpair()
    client.settimeout(5)
    s, store = session()
    t = run_serve(s, server)
    assert read_reply(client).startswith(b"220 ")
    for cmd, code in [(b"EHLO c", b"250"), (MAIL.encode(), b"250"), (RCPT.encode(), b"250"), (b"DATA", b"354")]:
        client.sendall(cmd + b"\r\n")
        assert read_reply(client)[:3] == code
    client.sendall(b"x\r\n.\r\n")
    assert read_reply(client)[:3] == b"250"
    client.sendall(b"QUIT\r\n")
    assert read_reply(client)[:3] == b"221"
    t.join(5)
    assert not t.is_alive() and len(store.stored) == 1
    client.close()
    server.close()


def test_serve_idle_timeout_sends_421() -> None:
    client, server = socket.socketpair()
    client.settimeout(5)
    s, _ = session()
    t = run_serve(s, server, timeout=0.2)
    assert read_reply(client).startswith(b"220 ")
    assert read_reply(client).startswith(b"421 4.4.2")
    t.join(5)
    assert not t.is_alive()
    client.close()
    server.close()


def test_serve_regular_file_input(tmp_path: Path) -> None:
    """sendmail -bs < file: the input need not be a pipe or a socket."""
    src = tmp_path / "session"
    src.write_bytes(PIPELINED)
    out = tmp_path / "replies"
    s, store = session()
    with open(src, "rb") as fin, open(out, "wb") as fout:
        smtp.serve(s, fin.fileno(), fout.fileno(), timeout=5)
    assert codes(out.read_bytes())[0] == "220" and codes(out.read_bytes())[-1] == "221"
    assert len(store.stored) == 2


def test_serve_client_gone_keeps_accepted() -> None:
    r, w = os.pipe()
    os.write(w, f"{MAIL}\r\n{RCPT}\r\nDATA\r\nx\r\n.\r\n".encode())
    os.close(w)
    out_r, out_w = os.pipe()
    s, store = session()
    smtp.serve(s, r, out_w, timeout=5)
    os.close(r)
    os.close(out_w)
    replies = os.read(out_r, 65536)
    os.close(out_r)
    assert codes(replies) == ["220", "250", "250", "354", "250"]
    assert len(store.stored) == 1 and s.closed


# -- the program, end to end, against a real journald -------------------------


def test_program_bs_stores_each_message(journald: harness.Journald, sendmail) -> None:  # type: ignore[no-untyped-def]
    r = sendmail(["-bs"], PIPELINED)
    assert r.returncode == 0, r.stderr
    assert codes(r.stdout) == [
        "220", "250", "250", "250", "250", "354", "250", "250", "250", "501", "250", "354", "250", "221",
    ]
    entries = journald.entries("MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172", wait_for=2)
    assert len(entries) == 2
    by_subject = {e["MAIL_SUBJECT"]: e for e in entries}
    one, two = by_subject[b"one"], by_subject[b"two"]
    assert one["MAIL_RAW"] == b"Subject: one\r\n\r\n.one\r\n"
    assert one["MAIL_ENVELOPE_FROM"] == b"a@x"
    assert sorted(one["MAIL_RCPT"]) == [b"b@y", b"c@z"] and one["MAIL_RCPTS"] == b"b@y,c@z"
    assert one["MAIL_PROTOCOL"] == b"ESMTP" and one["MAIL_SMTP_HELO"] == b"client"
    assert one["MAIL_SMTP_MAIL_PARAMS"] == b"SIZE=40 BODY=8BITMIME"
    assert one["MAIL_SMTP_RCPT_PARAMS"] == b"<b@y> NOTIFY=FAILURE"
    assert one["MAIL_ARGV"].endswith(b"\n-bs")
    assert two["MAIL_RAW"] == b"Subject: two\r\n\r\ntwo\r\n"
    assert two["MAIL_ENVELOPE_FROM"] == b"" and two["MAIL_RCPT"] == b"d@w"
    ids = {e["MAIL_ID"] for e in entries}
    assert all(b"queued as " + i in r.stdout for i in ids)


def test_program_bs_451_when_nothing_can_take_the_message(  # type: ignore[no-untyped-def]
    journald: harness.Journald, sendmail, config_file, tmp_path: Path
) -> None:
    env = config_file(f"socket = {tmp_path}/no-journal\nspool = {tmp_path}/no-spool\n")
    r = sendmail(["-bs"], f"{MAIL}\r\n{RCPT}\r\nDATA\r\nx\r\n.\r\nQUIT\r\n".encode(), env=env)
    assert codes(r.stdout) == ["220", "250", "250", "354", "451", "221"]
    assert r.returncode == 75


def test_program_bs_cut_session_is_recorded_refused(journald: harness.Journald, sendmail) -> None:  # type: ignore[no-untyped-def]
    r = sendmail(["-bs"], f"{MAIL}\r\n{RCPT}\r\nDATA\r\nSubject: cut\r\n\r\nhalf".encode())
    assert r.returncode == 0, r.stderr
    (entry,) = journald.entries("MESSAGE_ID=23042c0ef8f74902814ee4284e0a5521", wait_for=1)
    assert entry["MAIL_RAW"] == b"Subject: cut\r\n\r\nhalf"
    assert b"before the final dot" in entry["MAIL_REFUSED"]
    assert journald.entries("MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172") == []
