"""An SMTP client (Python's smtplib) talking to `sendmail -bs` over a socket
pair: two messages in one session, the second one pipelined, dot-stuffed
lines in both."""

from __future__ import annotations

import smtplib
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from kit.callers import SENDMAIL, argv, values

FIRST = b"From: a@x\r\nTo: b@y\r\nSubject: first\r\n\r\n.leading dot\r\n.\r\n..two dots\r\n8-bit \xc3\xa9\r\n"
SECOND = b"From: d@w\r\nTo: e@v\r\nSubject: second\r\n\r\nline\r\n.\r\n"


def stuffed(data: bytes) -> bytes:
    return b"." + data if data.startswith(b".") else data.replace(b"\r\n.", b"\r\n..")


def test_smtplib_session_two_messages(mails: Callable[..., list[dict]]) -> None:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen([SENDMAIL, "-bs"], stdin=theirs, stdout=theirs, env={"PATH": "/usr/bin:/bin"})
    theirs.close()
    client = smtplib.SMTP()
    client.sock = ours  # a connected socket: smtplib needs nothing else
    try:
        code, _ = client.getreply()
        assert code == 220
        assert client.ehlo("client.example")[0] == 250
        for ext in ("pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes"):
            assert client.has_extn(ext), ext
        assert not client.has_extn("starttls") and not client.has_extn("auth")

        # smtplib's own transaction: it adds SIZE= and dot-stuffs the data
        refused = client.sendmail("a@x", ["b@y", "c@z"], FIRST, ["BODY=8BITMIME"], ["NOTIFY=FAILURE"])
        assert refused == {}
        # the second one pipelined: MAIL, RCPT, RCPT, DATA in one write
        client.send(b"MAIL FROM:<d@w>\r\nRCPT TO:<e@v>\r\nRCPT TO:<f@u> ORCPT=rfc822;f@u\r\nDATA\r\n")
        assert [client.getreply()[0] for _ in range(4)] == [250, 250, 250, 354]
        client.send(stuffed(SECOND) + b".\r\n")
        code, queued = client.getreply()
        assert code == 250 and queued.startswith(b"2.0.0 Ok: queued as ")
        assert client.quit()[0] == 221
    finally:
        client.close()
        assert proc.wait(timeout=30) == 0

    entries = {e["MAIL_SUBJECT"]: e for e in mails(2)}
    first, second = entries[b"first"], entries[b"second"]
    comm = Path("/proc/self/comm").read_bytes().strip()
    for entry in (first, second):
        assert argv(entry) == [SENDMAIL, "-bs"]
        assert entry["MAIL_PROTOCOL"] == b"ESMTP"
        assert entry["MAIL_SMTP_HELO"] == b"client.example"
        assert entry["MAIL_CALLER_COMM"] == comm
        assert entry["_UID"] == b"0"
    assert first["MAIL_RAW"] == FIRST
    assert first["MAIL_ENVELOPE_FROM"] == b"a@x"
    assert sorted(values(first, "MAIL_RCPT")) == [b"b@y", b"c@z"]
    assert first["MAIL_SMTP_MAIL_PARAMS"] == f"size={len(FIRST)} BODY=8BITMIME".encode()
    assert first["MAIL_SMTP_RCPT_PARAMS"] == b"<b@y> NOTIFY=FAILURE\n<c@z> NOTIFY=FAILURE"
    assert second["MAIL_RAW"] == SECOND
    assert second["MAIL_ENVELOPE_FROM"] == b"d@w"
    assert sorted(values(second, "MAIL_RCPT")) == [b"e@v", b"f@u"]
    assert second["MAIL_SMTP_RCPT_PARAMS"] == b"<f@u> ORCPT=rfc822;f@u"
    assert queued.endswith(second["MAIL_ID"])
