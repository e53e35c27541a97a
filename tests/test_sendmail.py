"""The MTA end to end: the real program into a real journald, read back with
systemd.journal.Reader and compared field by field."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kit.harness import Journald, one
from kit.support import DATA, SRC, run_sendmail

from journal_sendmail import __version__
from journal_sendmail.record import MSG_MAIL, MSG_PART, MSG_REFUSED

MAIL = f"MESSAGE_ID={MSG_MAIL}"


def mail_id_of(p: subprocess.CompletedProcess[bytes]) -> str:
    m = re.search(rb"mail ([0-9a-f]{32})", p.stderr)
    assert m, p.stderr
    return m.group(1).decode()


def reassemble(j: Journald, entry: dict[str, Any]) -> bytes:
    """The raw message of a (possibly split) entry, from its parts."""
    parts = int(entry.get("MAIL_PARTS", b"1"))
    if parts == 1:
        return one(entry["MAIL_RAW"])
    found = {int(one(e["MAIL_PART"])): one(e["MAIL_RAW"])
             for e in j.entries(f"MESSAGE_ID={MSG_PART}", f"MAIL_ID={one(entry['MAIL_ID']).decode()}")}
    found[1] = one(entry["MAIL_RAW"])
    assert sorted(found) == list(range(1, parts + 1))
    return b"".join(found[i] for i in range(1, parts + 1))


def test_every_field(journald: Journald, sendmail: Any, bindir: Path) -> None:
    msg = (DATA / "rfc2047.eml").read_bytes()
    p = sendmail(["-v", "-t", "-f", "bounce@x", "-FFull Name", "-N", "never", "-B8BITMIME", "-oem", "argv@x, root"],
                 msg)
    assert p.returncode == 0, p.stderr
    e = journald.entries(MAIL, wait_for=1)
    assert len(e) == 1
    f = e[0]
    expected = {
        "MESSAGE": f"mail from bounce@x to argv@x, root, andre@y, jane@z, c@x and 1 more ({len(msg)} bytes): élèVe and more",
        "MESSAGE_ID": MSG_MAIL,
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "2",
        "SYSLOG_IDENTIFIER": "sendmail",
        "MAIL_ID": mail_id_of(p),
        "MAIL_ENVELOPE_FROM": "bounce@x",
        "MAIL_FULL_NAME": "Full Name",
        "MAIL_RCPTS": "argv@x,root,andre@y,jane@z,c@x,d@y",
        "MAIL_FROM": "Jörg <joerg@x>",
        "MAIL_TO": 'André <andre@y>, "Doe, Jane" <jane@z>',
        "MAIL_CC": "friends: c@x, d@y;",
        "MAIL_SUBJECT": "élèVe and more",
        "MAIL_SIZE": str(len(msg)),
        "MAIL_SHA256": hashlib.sha256(msg).hexdigest(),
        "MAIL_ARGV": "\n".join([str(bindir / "sendmail"), "-v", "-t", "-f", "bounce@x", "-FFull Name", "-N", "never",
                                "-B8BITMIME", "-oem", "argv@x, root"]),
        "MAIL_INVOKED_AS": "sendmail",
        "MAIL_CALLER_PID": str(os.getpid()),
        "MAIL_CALLER_EXE": os.readlink("/proc/self/exe"),
        "MAIL_DSN_NOTIFY": "never",
        "MAIL_BODY_TYPE": "8BITMIME",
        "_UID": "0",
        "_TRANSPORT": "journal",
    }
    for name, value in expected.items():
        assert one(f[name]).decode() == value, name
    assert one(f["MAIL_RAW"]) == msg
    assert sorted(f["MAIL_RCPT"]) == sorted([b"argv@x", b"root", b"andre@y", b"jane@z", b"c@x", b"d@y"])
    assert one(f["MAIL_CALLER_COMM"]) == Path("/proc/self/comm").read_bytes().strip()
    for absent in ("MAIL_TEXT", "MAIL_DEFECTS", "MAIL_TRUNCATED", "MAIL_AFTER_DOT", "MAIL_PARTS", "MAIL_SPOOLED"):
        assert absent not in f, absent


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.eml")))
def test_sample_messages_round_trip(journald: Journald, sendmail: Any, name: str) -> None:
    msg = (DATA / name).read_bytes()
    p = sendmail(["-i", "-v", "root"], msg)
    assert p.returncode == 0, p.stderr
    f = journald.entries(f"MAIL_ID={mail_id_of(p)}", wait_for=1)[0]
    assert one(f["MAIL_RAW"]) == msg
    assert one(f["MAIL_SHA256"]).decode() == hashlib.sha256(msg).hexdigest()
    assert one(f["MAIL_SIZE"]) == str(len(msg)).encode()


SPECIAL = [
    pytest.param("qp-latin1.eml", {"MAIL_TEXT": "café crème soft break\n"}, id="text-decoded"),
    pytest.param("defects.eml", {"MAIL_DEFECTS": None}, id="defects"),
    pytest.param("from-line.eml", {"MAIL_ENVELOPE_FROM": "alice@example.org"}, id="envelope-from-line"),
    pytest.param("8bit-headers.eml", {"MAIL_SUBJECT": "Cron <root@h> echo café ünïcode"}, id="8bit-subject"),
    pytest.param("invalid-utf8.eml", {"MAIL_SUBJECT": "bad \ufffd\ufffd bytes"}, id="invalid-utf8-subject"),
    pytest.param("rfc2047-plain-recipients.eml", {"MAIL_SUBJECT": "élève de la sauvegarde OK",
                                                  "MAIL_FROM": "Sauvegarde été <backup@example.org>"}, id="rfc2047"),
    pytest.param("newline-in-name.eml", {"MAIL_DEFECTS": None, "MAIL_TO": "é\n <c@example.org>, e@example.org"},
                 id="email-package-raises"),
]


@pytest.mark.parametrize(("name", "fields"), SPECIAL)
def test_special_fields(journald: Journald, sendmail: Any, name: str, fields: dict[str, str | None]) -> None:
    p = sendmail(["-i", "-v", "root"], (DATA / name).read_bytes())
    assert p.returncode == 0, p.stderr
    f = journald.entries(f"MAIL_ID={mail_id_of(p)}", wait_for=1)[0]
    for key, value in fields.items():
        assert key in f, key
        if value is not None:
            assert one(f[key]).decode() == value


def test_lone_dot_ends_the_message_and_the_rest_is_kept(journald: Journald, sendmail: Any) -> None:
    p = sendmail(["-v", "root"], b"Subject: dot\n\nbefore\n.\nafter\n.\nmore\n")
    assert p.returncode == 0, p.stderr
    f = journald.entries(f"MAIL_ID={mail_id_of(p)}", wait_for=1)[0]
    assert one(f["MAIL_RAW"]) == b"Subject: dot\n\nbefore\n"
    assert one(f["MAIL_AFTER_DOT"]) == b"after\n.\nmore\n"


def test_t_unites_header_and_argument_recipients(journald: Journald, sendmail: Any) -> None:
    p = sendmail(["-t", "-i", "-v", "extra@x"], b"To: a@x, b@y\nCc: c@z\nBcc: hidden@w\nSubject: t\n\nbody\n")
    assert p.returncode == 0, p.stderr
    f = journald.entries(f"MAIL_ID={mail_id_of(p)}", wait_for=1)[0]
    assert one(f["MAIL_RCPTS"]) == b"extra@x,a@x,b@y,c@z,hidden@w"
    assert one(f["MAIL_BCC"]) == b"hidden@w"


def test_no_recipients_is_recorded_and_refused(journald: Journald, sendmail: Any) -> None:
    p = sendmail(["-i"], b"Subject: nobody to\n\nbody\n")
    assert p.returncode == 64
    assert b"no recipients" in p.stderr
    f = journald.entries(f"MESSAGE_ID={MSG_REFUSED}", wait_for=1)
    assert len(f) == 1
    assert one(f[0]["PRIORITY"]) == b"4"
    assert one(f[0]["MAIL_RAW"]) == b"Subject: nobody to\n\nbody\n"
    assert not journald.entries(MAIL)


def test_bad_usage_with_data_is_recorded(journald: Journald, sendmail: Any) -> None:
    p = sendmail(["-bd", "root"], b"Subject: refused\n\nkept anyway\n")
    assert p.returncode == 64
    assert p.stderr.count(b"\n") == 1 and b"-bd is not supported" in p.stderr
    f = journald.entries(f"MESSAGE_ID={MSG_REFUSED}", wait_for=1)
    assert one(f[0]["MAIL_RAW"]) == b"Subject: refused\n\nkept anyway\n"
    assert b"-bd" in one(f[0]["MAIL_REFUSED"])


def test_bad_usage_without_data_records_nothing(journald: Journald, sendmail: Any) -> None:
    p = sendmail(["-Z"], b"")
    assert p.returncode == 64 and p.stderr == b"journal-sendmail: unknown option -Z\n"
    assert not journald.entries("SYSLOG_IDENTIFIER=sendmail")


MODES = [
    pytest.param("mailq", [], 0, b"Mail queue is empty\n", id="mailq"),
    pytest.param("sendmail", ["-bp"], 0, b"Mail queue is empty\n", id="bp"),
    pytest.param("newaliases", [], 0, b"", id="newaliases"),
    pytest.param("sendmail", ["-bi"], 0, b"", id="bi"),
    pytest.param("sendmail", ["-I"], 0, b"", id="I"),
    pytest.param("sendmail", ["-bV"], 0, f"sendmail (journal-sendmail) {__version__}\n".encode(), id="bV"),
    pytest.param("journal-sendmail", ["--version"], 0, f"journal-sendmail {__version__}\n".encode(), id="version"),
    pytest.param("sendmail", ["-bv", "a@x, b@y"], 0,
                 b"a@x... deliverable: mailer journal\nb@y... deliverable: mailer journal\n", id="bv"),
    pytest.param("sendmail", ["-q"], 0, b"", id="q"),
    pytest.param("runq", [], 0, b"", id="runq"),
]


@pytest.mark.parametrize(("name", "args", "code", "out"), MODES)
def test_modes(journald: Journald, bindir: Path, name: str, args: list[str], code: int, out: bytes) -> None:
    p = run_sendmail(bindir, args, b"", name=name)
    assert (p.returncode, p.stdout) == (code, out), p.stderr
    assert not journald.entries(MAIL)


def test_empty_environment_and_closed_streams(journald: Journald, bindir: Path) -> None:
    script = f'exec env -i {bindir}/sendmail -v root >&- 2>&-'
    p = subprocess.run(["sh", "-c", script], input=b"Subject: closed\n\nx\n", capture_output=True, timeout=30)
    assert p.returncode == 0
    assert len(journald.entries("MAIL_SUBJECT=closed", wait_for=1)) == 1


def test_closed_stdin_is_an_empty_message(journald: Journald, bindir: Path) -> None:
    p = subprocess.run(["sh", "-c", f"exec {bindir}/sendmail root <&-"], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert one(journald.entries(MAIL, wait_for=1)[0]["MAIL_SIZE"]) == b"0"


def test_unprivileged_sender(journald: Journald, bindir: Path) -> None:
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", f"{bindir}/sendmail", "-v", "root"],
                       input=b"Subject: from nobody\n\nx\n", capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert b"stored in the journal" in p.stderr
    f = journald.entries("MAIL_SUBJECT=from nobody", wait_for=1)[0]
    assert one(f["_UID"]) == b"65534"
    assert one(f["MAIL_ENVELOPE_FROM"]) == b"nobody"


def test_configuration_is_used(journald: Journald, sendmail: Any, config_file: Any) -> None:
    env = config_file("identifier = mta\npriority = notice\nfacility = local1\nstore_text = no\n")
    p = sendmail(["-v", "root"], (DATA / "qp-latin1.eml").read_bytes(), env=env)
    assert p.returncode == 0, p.stderr
    f = journald.entries(f"MAIL_ID={mail_id_of(p)}", wait_for=1)[0]
    assert (one(f["SYSLOG_IDENTIFIER"]), one(f["PRIORITY"]), one(f["SYSLOG_FACILITY"])) == (b"mta", b"5", b"17")
    assert "MAIL_TEXT" not in f


def _send_measured(bindir: Path, path: Path, env: dict[str, str]) -> tuple[int, int, bytes]:
    """Run sendmail on a file; (exit code, peak RSS in KiB, stderr).

    GNU time forks the program from its own small process: a child forked
    from pytest would count pytest's memory as its own peak (exec keeps the
    high-water mark of the image it replaces).
    """
    with open(path, "rb") as f:
        p = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", str(bindir / "sendmail"), "-i", "-v", "root"],
                           stdin=f, capture_output=True, env=env, timeout=300)
    m = re.search(rb"maxrss=(\d+)\n$", p.stderr)
    assert m, p.stderr
    return p.returncode, int(m.group(1)), p.stderr[: m.start()]


SIZES = [
    pytest.param(0, id="0B"),
    pytest.param(1000, id="1KB"),
    pytest.param(1 << 20, id="1MB"),
    pytest.param(10 << 20, id="10MB"),
    pytest.param(100 << 20, id="100MB", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("size", SIZES)
def test_sizes_round_trip_byte_for_byte(journald: Journald, bindir: Path, tmp_path: Path, size: int) -> None:
    path = tmp_path / "msg"
    with open(path, "wb") as f:  # headers, then incompressible bytes, in steps (no 100 MB in memory)
        f.write(b"Subject: big\n\n"[:size])
        left = max(0, size - 14)
        while left:
            step = min(left, 1 << 20)
            f.write(os.urandom(step))
            left -= step
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code, rss_kib, err = _send_measured(bindir, path, {"PATH": "/usr/bin:/bin"})
    assert code == 0, err
    f = journald.entries(f"MAIL_ID={mail_id_of(subprocess.CompletedProcess([], 0, b'', err))}", MAIL, wait_for=1)[0]
    data = reassemble(journald, f)
    assert hashlib.sha256(data).hexdigest() == digest == one(f["MAIL_SHA256"]).decode()
    assert int(one(f["MAIL_SIZE"])) == size
    assert rss_kib < 64 * 1024, f"peak RSS {rss_kib} KiB"
    if size > 1 << 20:
        assert int(one(f["MAIL_PARTS"])) == -(-size // (1 << 20))


def test_over_max_size_is_truncated(journald: Journald, bindir: Path, tmp_path: Path, config_file: Any) -> None:
    env = config_file("part_size = 4K\nmax_size = 10K\n")
    path = tmp_path / "msg"
    data = b"Subject: too big\n\n" + os.urandom(50000)
    path.write_bytes(data)
    code, _, err = _send_measured(bindir, path, env)
    assert code == 0, err
    f = journald.entries(MAIL, wait_for=1)[0]
    assert one(f["MAIL_TRUNCATED"]) == str(len(data)).encode()
    assert reassemble(journald, f) == data[:10240]


# The journal cannot take the message, and there is no spool either: exit 75
# within the timeout and a second, with one line saying why.
NO_SPOOL = "timeout = 1\nspool = /nonexistent/spool\n"


def _stale_socket() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("/run/systemd/journal/socket")
    return s


def test_no_socket_exits_75(journald: Journald, sendmail: Any, config_file: Any) -> None:
    journald.stop()
    os.unlink("/run/systemd/journal/socket")
    t = time.monotonic()
    p = sendmail(["root"], b"Subject: lost?\n\nx\n", env=config_file(NO_SPOOL))
    assert p.returncode == 75 and time.monotonic() - t < 2
    assert b"no such socket" in p.stderr and b"/nonexistent/spool" in p.stderr and p.stderr.count(b"\n") == 1


def test_stale_socket_exits_75(journald: Journald, sendmail: Any, config_file: Any) -> None:
    journald.stop()
    os.unlink("/run/systemd/journal/socket")
    stale = _stale_socket()
    stale.close()  # the file stays, nobody listens: ECONNREFUSED
    p = sendmail(["root"], b"Subject: lost?\n\nx\n", env=config_file(NO_SPOOL))
    assert p.returncode == 75
    assert b"connection refused" in p.stderr and p.stderr.count(b"\n") == 1


def test_stopped_journald_times_out_with_75(journald: Journald, bindir: Path, config_file: Any) -> None:
    env = config_file(NO_SPOOL)
    journald.pause()
    try:
        results = []
        for i in range(30):  # the kernel queues a few datagrams; then a send blocks
            t = time.monotonic()
            p = run_sendmail(bindir, ["root"], f"Subject: n{i}\n\nx\n".encode(), env=env)
            results.append((p.returncode, time.monotonic() - t))
            if p.returncode == 75:
                assert b"timed out after 1 s" in p.stderr
                break
        code, took = results[-1]
        assert code == 75 and took < 2.0, results
        assert all(c == 0 for c, _ in results[:-1])
    finally:
        journald.resume()
    # what the kernel queued before the block is stored once journald runs again
    assert len(journald.entries(MAIL, wait_for=len(results) - 1)) == len(results) - 1


def test_a_header_parser_bug_still_stores_the_mail(journald: Journald, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from journal_sendmail import config, deliver, headers, message, options
    from journal_sendmail.submission import Submission

    def broken(head: bytes) -> headers.Headers:
        raise RuntimeError("boom")

    monkeypatch.setattr(headers, "parse", broken)
    cfg = config.Config(socket=journald.socket_path)
    stdin = io.BytesIO(b"To: a@x\nSubject: s\n\nbody\n")
    raw = message.read(lambda n: stdin.read(n), ignore_dots=True, part_size=cfg.part_size, max_size=cfg.max_size)
    sub = Submission.now(options.parse(["sendmail", "-i", "root"]), raw)
    assert deliver.accept(sub, cfg) == "stored in the journal"
    f = journald.entries(f"MAIL_ID={sub.mail_id}", wait_for=1)[0]
    assert one(f["MAIL_RCPT"]) == b"root"
    assert one(f["MAIL_DEFECTS"]) == b"headers: not parsed: RuntimeError: boom"
    assert one(f["MAIL_RAW"]) == b"To: a@x\nSubject: s\n\nbody\n"


def test_internal_error_is_one_line_and_70(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from journal_sendmail import cli

    def broken(inv: object, cfg: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.MODES, "newaliases", broken)
    assert cli.main(["newaliases"]) == 70
    assert capfd.readouterr().err == "journal-sendmail: internal error: RuntimeError: boom\n"


def test_interrupt_never_claims_success(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from journal_sendmail import cli

    def interrupted(inv: object, cfg: object) -> int:
        # to this thread (os.kill may hand it to another of the test's threads,
        # and Python then raises it only once this one runs bytecode again)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the interrupt comes at one of these sleeps
            time.sleep(0.01)
        return 0

    monkeypatch.setitem(cli.MODES, "newaliases", interrupted)
    assert cli.main(["newaliases"]) == 75


LEAVE = ("import sys; sys.path.insert(0, sys.argv[1]); from journal_sendmail.cli import leave; "
         "sys.stdout and sys.stdout.write('buffered'); leave(3)")


@pytest.mark.parametrize("stdout", ["pipe", "closed", "broken-pipe"])
def test_leave_flushes_and_keeps_the_code(stdout: str) -> None:
    # leave() skips the interpreter's teardown: what Python still buffered must
    # come out first, and a closed or broken stdout must not become a traceback.
    cmd = ["/bin/sh", "-c", '/usr/bin/python3 -IS -c "$0" "$1" ' + (">&-" if stdout == "closed" else ""),
           LEAVE, str(SRC)]
    if stdout == "broken-pipe":
        r, w = os.pipe()
        os.close(r)
        try:
            p = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, timeout=30)
        finally:
            os.close(w)
        assert (p.returncode, p.stderr) == (3, b"")
        return
    p = subprocess.run(cmd, capture_output=True, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"buffered" if stdout == "pipe" else b"", b"")
