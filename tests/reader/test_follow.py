"""follow: new mail as it arrives, journal rotation, and the export service
(cursor across restarts, SIGHUP from logrotate) run from its own unit file."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import harness
from kit.reader import ROOT, Exporter, spawn_jm, wait_until

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
LOGROTATE = ROOT / "conf" / "journal-sendmail.logrotate"


class Lines:
    """Lines of a running process's stdout, read with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.fd, self.buf = proc, proc.stdout.fileno(), b""

    def next(self, timeout: float = 15.0) -> str:
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, f"no line within {timeout} s"
            chunk = os.read(self.fd, 65536)
            assert chunk, f"follow ended (exit {self.proc.poll()})"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


@pytest.fixture
def follower() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Lines]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], Lines]:
        proc = spawn_jm("follow", *args, stdout=subprocess.PIPE)
        procs.append(proc)
        return proc, Lines(proc)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def mail(subject: str) -> bytes:
    return f"From: cron@example.org\nSubject: {subject}\n\nbody of {subject}\n".encode()


def test_follow_prints_mail_sent_after_it_started(journald: harness.Journald, sendmail: Sendmail,
                                                  follower: Any) -> None:  # fmt: skip
    assert sendmail(["root"], mail("before")).returncode == 0
    journald.entries("MAIL_SUBJECT=before", wait_for=1)
    _proc, lines = follower("--format", "json", "-n", "1")
    assert json.loads(lines.next())["subject"] == "before"  # positioned: all later mail is new
    assert sendmail(["root"], mail("after")).returncode == 0
    rec = json.loads(lines.next())
    assert rec["subject"] == "after" and rec["body"].endswith("body of after\n")
    assert sendmail(["-f", "x@example.org", "ops"], mail("filtered out")).returncode == 0
    assert sendmail(["root"], mail("table too")).returncode == 0
    _proc2, table = follower("--to", "root", "-n", "1")
    assert "table too" in table.next()


def test_follow_survives_journal_rotation(journald: harness.Journald, sendmail: Sendmail, follower: Any) -> None:
    _proc, lines = follower("--format", "json")
    wait_until(lambda: sendmail(["root"], mail("probe")).returncode == 0 and _seen(lines, "probe"), what="follow ready")
    for n in range(3):
        subprocess.run(["journalctl", "--rotate"], check=True, timeout=30)
        assert sendmail(["root"], mail(f"rotated {n}")).returncode == 0
        assert json.loads(lines.next())["subject"] == f"rotated {n}"


def test_follow_gives_a_mail_uploaded_twice_once(journald: harness.Journald, sendmail: Sendmail,
                                                 follower: Any) -> None:  # fmt: skip
    # journal-upload sends the entry at its saved cursor again when it restarts:
    # the same entry (same MAIL_ID) twice in a row, as a central journal holds it.
    from systemd import journal

    _proc, lines = follower("--format", "json")
    wait_until(lambda: sendmail(["root"], mail("probe")).returncode == 0 and _seen(lines, "probe"), what="follow ready")
    assert sendmail(["root"], mail("uploaded twice")).returncode == 0
    first = json.loads(lines.next())
    assert first["subject"] == "uploaded twice"
    entry = journald.entries("MAIL_SUBJECT=uploaded twice", wait_for=1)[0]
    copy = {k: v[0] if isinstance(v, list) else v for k, v in entry.items() if not k.startswith("_")}
    journal.send(copy.pop("MESSAGE").decode(), MESSAGE_ID=copy.pop("MESSAGE_ID").decode(), **copy)
    journald.entries("MAIL_SUBJECT=uploaded twice", wait_for=2)
    assert sendmail(["root"], mail("after the copy")).returncode == 0
    assert json.loads(lines.next())["subject"] == "after the copy"


def _seen(lines: Lines, subject: str) -> bool:
    try:
        return json.loads(lines.next(timeout=1.0))["subject"] == subject
    except AssertionError:
        return False


def test_export_service_restart_neither_loses_nor_repeats(journald: harness.Journald, sendmail: Sendmail,
                                                          exporter: Exporter) -> None:  # fmt: skip
    for n in range(3):  # in the journal before the first start: exported too (-n all)
        assert sendmail(["root"], mail(f"old {n}")).returncode == 0
    journald.entries("MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172", wait_for=3)
    exporter.start()
    wait_until(lambda: len(exporter.subjects()) == 3, what="the first export")
    assert sendmail(["root"], mail("live 1")).returncode == 0
    wait_until(lambda: len(exporter.subjects()) == 4, what="live 1")
    exporter.stop()
    assert exporter.cursor.read_text().startswith("s=")
    for n in range(3):  # sent while the service is down
        assert sendmail(["root"], mail(f"while down {n}")).returncode == 0
    journald.entries("MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172", wait_for=7)
    exporter.start()
    assert sendmail(["root"], mail("live 2")).returncode == 0
    want = ["old 0", "old 1", "old 2", "live 1", "while down 0", "while down 1", "while down 2", "live 2"]
    wait_until(lambda: len(exporter.subjects()) >= len(want), what="every mail")
    exporter.stop()
    exporter.start()  # a restart with nothing new adds nothing
    assert sendmail(["root"], mail("live 3")).returncode == 0
    wait_until(lambda: len(exporter.subjects()) >= len(want) + 1, what="live 3")
    exporter.stop()
    assert exporter.subjects() == [*want, "live 3"]
    assert exporter.log.stat().st_mode & 0o777 == 0o640


def test_logrotate_loses_no_line(journald: harness.Journald, sendmail: Sendmail, exporter: Exporter,
                                 tmp_path: Path) -> None:  # fmt: skip
    exporter.start()
    assert exporter.proc is not None
    conf = LOGROTATE.read_text().replace("/var/log/journal-sendmail/mail.jsonl", str(exporter.log))
    # systemd is not PID 1 here: the packaged postrotate does nothing, so send
    # the SIGHUP that its `systemctl kill --signal=HUP` would send.
    conf = re.sub(r"postrotate.*?endscript", f"postrotate\n\t\tkill -HUP {exporter.proc.pid}\n\tendscript",
                  conf, flags=re.S)  # fmt: skip
    conf = conf.replace("create 0640 root adm", "create 0640 root root")  # no adm group needed here
    (tmp_path / "logrotate.conf").write_text(conf)
    state = tmp_path / "logrotate.state"
    sent = 0
    for _rotation in range(3):
        for _ in range(4):
            assert sendmail(["root"], mail(f"line {sent}")).returncode == 0
            sent += 1
        wait_until(lambda n=sent: len(exporter.subjects(*_logs(exporter))) == n, what="lines before rotating")
        subprocess.run(["logrotate", "-f", "-s", str(state), str(tmp_path / "logrotate.conf")], check=True,
                       timeout=60)  # fmt: skip
        assert sendmail(["root"], mail(f"line {sent}")).returncode == 0  # right after the HUP
        sent += 1
        wait_until(lambda n=sent: len(exporter.subjects(*_logs(exporter))) == n, what="the line after the HUP")
    wait_until(lambda: len(exporter.subjects(*_logs(exporter))) >= sent, what="every line")
    exporter.stop()
    rotated = sorted(exporter.log.parent.glob("mail.jsonl.*"))
    assert len(rotated) == 3 and any(p.suffix == ".gz" for p in rotated)
    assert sorted(exporter.subjects(*_logs(exporter)), key=lambda s: int(s.split()[1])) == [
        f"line {n}" for n in range(sent)
    ]
    # after each rotation the live file got the new lines: the process reopened it
    assert exporter.subjects() == [f"line {sent - 1}"]


def _logs(exporter: Exporter) -> list[Path]:
    import gzip

    unzipped = exporter.log.parent.parent / "unzipped"
    unzipped.mkdir(exist_ok=True)
    out = []
    for p in sorted(exporter.log.parent.glob("mail.jsonl*")):
        if p.suffix == ".gz":
            plain = unzipped / p.stem
            plain.write_bytes(gzip.decompress(p.read_bytes()))
            out.append(plain)
        else:
            out.append(p)
    return out
