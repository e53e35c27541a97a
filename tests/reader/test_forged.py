"""Entries forged by a local user: the reader stays bounded and exact.

The journal socket is open to every local user, so anyone can write entries
that look like our mail.  Here uid nobody does, on the socket, with a small
native-protocol writer of its own (as an attacker would): part counts of a
billion and of "x", sizes of -5, a part and a twin message entry carrying
the MAIL_ID of root's genuine mail, absurd numbers and times, an escape
sequence in a MAIL_ID, and a flood of 10,000 entries.  Root's list, show,
export (every format), stats and the export unit's follow then each run
under a hard memory cap (prlimit), finish, stay under 200 MiB, and give
every genuine mail back byte-exact; the mirror goes on past the forgeries.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kit import harness
from kit.reader import ENV, NOBODY, READER, Exporter, forge, wait_until
from kit.support import json_raw

from journal_sendmail.record import MSG_MAIL, MSG_PART

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
CAP = 200 * 1024 * 1024  # bytes: the most any reader run may use here
FLOOD = 10_000

def capped(*args: str, out: Path) -> tuple[int, bytes, int]:
    """journal-mail ARGS as root under a hard memory cap: (exit code, stderr, peak RSS in bytes).

    The cap is prlimit's RLIMIT_DATA (the heap and every private mapping; the
    journal files are mapped shared and read-only): past it, allocation fails.
    The peak comes from GNU time, a small parent: a child forked from pytest
    itself would report pytest's size as its own peak.
    """
    rss = out.with_suffix(".rss")
    with open(out, "wb") as stdout:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), "prlimit", f"--data={CAP}", "--",
                            *READER, *args], stdout=stdout, stderr=subprocess.PIPE, env=ENV, timeout=300)
    return p.returncode, p.stderr, int(rss.read_text().split()[-1]) * 1024


def mail_id_of(p: subprocess.CompletedProcess[bytes]) -> str:
    assert p.returncode == 0, p.stderr
    return p.stderr.split(b"mail ", 1)[1][:32].decode()


def entry(mail_id: str, raw: bytes, **fields: str) -> list[tuple[str, str]]:
    """A message entry as journal-sendmail writes it, forged; ``fields`` replace or add fields."""
    base = {"MESSAGE": "forged", "MESSAGE_ID": MSG_MAIL, "MAIL_ID": mail_id, "MAIL_RCPT": "root",
            "MAIL_RCPTS": "root", "MAIL_SIZE": str(len(raw)), "MAIL_SHA256": hashlib.sha256(raw).hexdigest(),
            "MAIL_RAW": raw.decode("latin-1")}
    return list({**base, **fields}.items())


@pytest.fixture
def forged_journal(journald: harness.Journald, sendmail: Sendmail, exporter: Exporter) -> dict[str, Any]:
    """Root's genuine mail A (small), B (split in 3) and C (sent after the forgeries),
    and nobody's forgeries between them; the export unit runs throughout."""
    genuine = {
        "a": b"From: root\nTo: root\nSubject: genuine a\n\nthe real body of a\n",
        "b": b"From: root\nTo: root\nSubject: genuine b\n\n" + b"".join(
            hashlib.sha256(b"%d" % i).hexdigest().encode() + b"\n" for i in range(40_000)),  # 2.6 MB: 3 parts
        "c": b"From: root\nTo: root\nSubject: genuine c\n\nsent after the forgeries\n",
    }
    ids = {k: mail_id_of(sendmail(["-v", "root"], genuine[k])) for k in ("a", "b")}
    b_parts = journald.entries(f"MESSAGE_ID={MSG_PART}", f"MAIL_ID={ids['b']}", wait_for=2)
    assert len(b_parts) == 2
    chunk = len(b_parts[0]["MAIL_RAW"])
    exporter.start()
    wait_until(lambda: len(exporter.subjects()) == 2, what="the mirror of a and b")
    twin = b"From: root\nTo: root\nSubject: genuine a\n\nnobody's bytes under root's MAIL_ID\n"
    forge([
        entry("f1" * 16, b"x" * 5, MAIL_PARTS="1000000000", MAIL_PART="1"),  # a billion parts
        entry("f2" * 16, b"x" * 5, MAIL_PARTS="x", MAIL_SIZE="-5"),
        entry("f3" * 16, b"x" * 5, MAIL_SIZE="9" * 40, MAIL_PARTS="2"),
        entry(ids["a"], twin, MAIL_SUBJECT="genuine a"),  # a twin of root's mail a
        [("MESSAGE", "part"), ("MESSAGE_ID", MSG_PART), ("MAIL_ID", ids["b"]), ("MAIL_PART", "2"),
         ("MAIL_PARTS", "3"), ("MAIL_RAW", "E" * chunk)],  # a part for root's mail b, of the right length
        [("MESSAGE", "part"), ("MESSAGE_ID", MSG_PART), ("MAIL_ID", ids["b"]), ("MAIL_PART", "999999999"),
         ("MAIL_PARTS", "1000000000"), ("MAIL_RAW", "E")],
        entry("\x1b]0;owned\x07\x1b[2J" + "0" * 20, b"x"),  # a MAIL_ID that would retitle a terminal
        entry("f4" * 16, b"Subject: absurd\n\nx\n", MAIL_CALLER_PID="9" * 30, MAIL_TRUNCATED="-1",
              MAIL_SPOOLED="yes", MAIL_SPOOL_UID="0", MAIL_SUBMITTED_AT="99999-99-99T99:99:99Z",
              MAIL_DATE="Mon, 1 Jan 999999 00:00:00 +9999", SYSLOG_TIMESTAMP="Jan 99 99:99:99"),
    ], flood=FLOOD)
    ids["c"] = mail_id_of(sendmail(["-v", "root"], genuine["c"]))
    return {"genuine": genuine, "ids": ids, "exporter": exporter, "twin": twin}


def test_forged_entries_cost_nothing_and_change_nothing(forged_journal: dict[str, Any], tmp_path: Path) -> None:
    genuine, ids, exporter = forged_journal["genuine"], forged_journal["ids"], forged_journal["exporter"]
    out = tmp_path / "out"
    peaks: dict[str, int] = {}

    def run(name: str, *args: str, code: int = 0) -> tuple[bytes, bytes]:
        got, err, peaks[name] = capped(*args, out=out)
        assert got == code, (name, got, err[-3000:])
        assert b"internal error" not in err and b"MemoryError" not in err, err[-3000:]
        return out.read_bytes(), err

    # list: every genuine mail once, the twin as nobody's, the broken ones marked, nothing as given
    rows, err = run("list --json", "list", "--json")
    recs = [json.loads(line) for line in rows.splitlines()]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_id.setdefault(r["mail_id"], []).append(r)
    assert sorted(r["uid"] for r in by_id[ids["a"]]) == ["0", str(NOBODY)]  # two mails, not one
    assert [r["uid"] for r in by_id[ids["b"]]] == ["0"] and by_id[ids["b"]][0]["size"] == len(genuine["b"])
    assert [r["uid"] for r in by_id[ids["c"]]] == ["0"]
    for forged_id in ("f1" * 16, "f2" * 16, "f3" * 16):
        (r,) = by_id[forged_id]
        assert r["damaged"] and r["size"] is None and r["parts"] is None and r["uid"] == str(NOBODY), r
    (absurd,) = by_id["f4" * 16]
    assert absurd["caller_pid"] is None and absurd["truncated"] is None and absurd["uid"] == str(NOBODY)
    assert len(recs) == 3 + 1 + 5 + FLOOD  # a, b, c; the twin; f1-f4 and the escape; the flood
    assert err.count(b"\n") == 1 and b"entries look like mail" in err  # one note for all of them
    table, _ = run("list", "list")
    assert b"\x1b" not in table and b"[damaged]" in table and b" -5 " not in table
    central, _ = run("list -D", "-D", harness_journal_dir(), "list", "--json")
    crecs = [json.loads(line) for line in central.splitlines()]
    assert sorted(r["uid"] for r in crecs if r["mail_id"] == ids["a"]) == ["0", str(NOBODY)]
    assert all(r["duplicates"] == 0 for r in crecs)

    # show: never one sender's bytes as another's mail
    _, err = run("show a", "show", "--raw", ids["a"], code=65)
    assert b"2 senders wrote entries with this MAIL_ID" in err and b"uid 0 (root)" in err
    raw, _ = run("show a --uid 0", "show", "--raw", "--uid", "0", ids["a"])
    assert raw == genuine["a"]
    raw, _ = run("show b", "show", "--raw", ids["b"])
    assert raw == genuine["b"]  # nobody's part 2 was not joined to root's mail
    raw, err = run("show f1 b c", "show", "--raw", "f1" * 16, ids["b"], ids["c"], code=65)
    assert raw == genuine["b"] + genuine["c"] and b"MAIL_PARTS is not a part count" in err

    # export, every format: the genuine mails byte-exact, the damaged ones not written (65)
    mbox, _ = run("export mbox", "export", "--format", "mbox", "--uid", "0")
    assert mbox.count(b"\nFrom root ") + mbox.startswith(b"From root ") == 3
    assert all(genuine[k] in mbox for k in "abc")  # no From lines in them: byte for byte
    mbox, _ = run("export mbox all", "export", "--format", "mbox", code=65)
    assert all(genuine[k] in mbox for k in "abc") and forged_journal["twin"] in mbox
    lines, err = run("export json", "export", "--format", "json", code=65)
    exported = [json.loads(line) for line in lines.splitlines()]
    root_raw = sorted(json_raw(r) for r in exported if r["uid"] == "0")
    assert root_raw == sorted(genuine.values())
    assert len(exported) == 3 + 1 + 1 + FLOOD // 2  # a, b, c, the twin, f4, nobody's consistent ones
    assert err.count(b"is damaged") == FLOOD // 2 + 4
    eml = tmp_path / "eml"
    run("export eml", "export", "--format", "eml", "-o", str(eml), code=65)
    files = {p.name: p.read_bytes() for p in eml.iterdir()}
    for k in "bc":
        assert [v for n, v in files.items() if ids[k] in n] == [genuine[k]]
    # root's a and nobody's twin: two files, never one over the other (stamped in the same second,
    # the twin's name gets its uid)
    assert sorted(v for n, v in files.items() if ids["a"] in n) == sorted([genuine["a"], forged_journal["twin"]])

    # stats: the damaged ones are not counted
    stats, err = run("stats", "stats", "--by", "user", "--json")
    counts = {json.loads(line)["user"]: json.loads(line)["mails"] for line in stats.splitlines()}
    assert counts == {"root": 3, "nobody": 1 + 1 + FLOOD // 2} and b"not counted" in err

    # the mirror went on past every forged entry, one line each for what it could not use
    wait_until(lambda: "genuine c" in exporter.subjects(), timeout=60, what="the mirror past the forgeries")
    assert exporter.proc is not None and exporter.proc.poll() is None
    peaks["follow"] = vm_hwm(exporter.proc.pid)
    mirrored = [json.loads(line) for line in exporter.log.read_text().splitlines()]
    assert sorted(json_raw(r) for r in mirrored if r["uid"] == "0") == sorted(genuine.values())
    err = exporter.stop(quiet=False)
    assert err.count(b"\n") == FLOOD // 2 + 4 and err.count(b"is damaged") == FLOOD // 2 + 4, err[-2000:]
    assert b"\x1b" not in err

    print("peak RSS (MiB):", {k: round(v / 2**20, 1) for k, v in peaks.items()})
    assert all(v < CAP for v in peaks.values()), peaks


def harness_journal_dir() -> str:
    """The directory of the private journald's files (a central journal's reader reads it too)."""
    with open("/etc/machine-id") as f:
        mid = f.read().strip()
    for d in (f"/var/log/journal/{mid}", f"/run/log/journal/{mid}"):
        if os.path.isdir(d) and os.listdir(d):
            return d
    raise AssertionError("no journal directory")


def vm_hwm(pid: int) -> int:
    """The peak resident size of a running process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
