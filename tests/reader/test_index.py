"""The mail index: the same answers as the scan, for every filter and stats key, and exact under change.

One corpus for the equality tests: a few thousand varied mails written into a
real journald (most in-process, as the bench does, the special ones through
the real sendmail: split, refused, 8-bit and RFC 2047 subjects, a long body,
a user's mail, a spooled one, a forged one), indexed, then more mail stored
after the index was built; and a central directory (journal-remote's files)
holding two hosts' mail, one of them uploaded twice and one with its clock an
hour behind.  Every answer with the index must equal the answer without it.
"""

from __future__ import annotations

import grp
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kit import harness
from kit.index import INDEX_DIR, LONG_WORD, both, fill, send
from kit.reader import (
    USER_UID,
    as_host,
    as_user,
    export,
    flush_to_persistent,
    ok,
    parse_export,
    records,
    remote,
    run_jm,
    write_entry,
)

from journal_sendmail import record


def special(bindir: Path, tmp: Path, tag: str) -> None:
    """The mails only the real sendmail makes: split (parts of 4K), refused, 8-bit, encoded, long."""
    cfg = tmp / "small-parts.conf"
    cfg.write_text("[journal-sendmail]\npart_size = 4K\n")
    split = {"JOURNAL_SENDMAIL_CONFIG": str(cfg)}
    long_body = "".join(f"line {n} of a long report\n" for n in range(2000)) + LONG_WORD + "\n"
    results = [
        send(bindir, ["root"], f"Subject: split {tag}\n\n".encode() + b"DegradedArray 0123456789\n" * 700, env=split),
        send(bindir, [], f"Subject: refused {tag}\n\nno recipients\n".encode()),
        send(bindir, ["root"], b"Subject: 8-bit caf\xe9 " + tag.encode() + b"\n\nbody \xe9\n"),
        send(bindir, ["-t"], f"To: ops@example.org\nSubject: =?utf-8?b?w6l0w6kgcmVwb3J0?= {tag}\n\nété\n".encode()),
        send(bindir, ["root"], f"Subject: long {tag}\nContent-Type: text/plain\n\n{long_body}".encode(), env=split),
        send(bindir, ["root"], f"Subject: user {tag}\n\nmine\n".encode(), prefix=as_user(USER_UID)),
        send(bindir, ["-f", "alice@example.com", "root"],
             f"Subject: qp {tag}\nContent-Transfer-Encoding: quoted-printable\n\nDisk =C3=A9t=C3=A9\n".encode()),
    ]
    assert [r.returncode for r in results] == [0, 64, 0, 0, 0, 0, 0], [r.stderr for r in results]


@dataclass
class Corpus:
    central: Path
    boot: str
    copies: int  # mails uploaded twice into central
    twice: Path  # one upload written into two files
    fleet: Path  # a log host: 50 hosts' files, late uploads, copies, one upload in two files, a tail


def fleet(entries: list[list[tuple[bytes, bytes]]], directory: Path) -> None:
    """50 hosts' journal-remote files: clocks apart, every 7th host uploading its newest part
    first (late), every 5th sending a part twice (journal-upload restarted), host h00's
    upload written into a second file as well (sd-journal shows such entries once)."""
    directory.mkdir()
    per = max(len(entries) // 50, 4)
    for h in range(50):
        mine = as_host(entries[h * per:(h + 1) * per], f"h{h:02d}", skew_s=(h % 9 - 4) * 600)
        if h % 7 == 3:
            mine = mine[per // 2:] + mine[:per // 2]
        if h % 5 == 1:
            mine = mine + mine[per // 3:per // 2]
        stream = export(mine)
        remote(stream, directory / f"remote-h{h:02d}.journal")
        if h == 0:
            remote(stream, directory / "remote-h00-again.journal")


def fleet_tail(entries: list[list[tuple[bytes, bytes]]], directory: Path) -> None:
    """After the index: a new host's file, and one host uploading again (copies of indexed mail)."""
    remote(export(as_host(entries[:40], "h50", skew_s=-7200)), directory / "remote-h50.journal")
    per = max(len(entries) // 50, 4)
    remote(export(as_host(entries[2 * per:2 * per + 10], "h02", skew_s=(2 % 9 - 4) * 600)),
           directory / "remote-h02.journal")


@pytest.fixture(scope="module")
def corpus(bindir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    harness.clean_journal_dirs()
    for f in INDEX_DIR.glob("*"):
        f.unlink()
    j = harness.Journald(activated=True).start()
    tmp = tmp_path_factory.mktemp("index")
    tmp.chmod(0o755)
    try:
        flush_to_persistent(j)
        fill(2500)
        special(bindir, tmp, "before")
        forged = [("MESSAGE", b"forged"), ("MESSAGE_ID", record.MSG_MAIL.encode()), ("MAIL_ID", b"f" * 32),
                  ("MAIL_SIZE", b"-5"), ("MAIL_PARTS", b"1000000000"), ("MAIL_RAW", b"x")]
        write_entry(forged)
        j.sync()
        # the central directory: web1's mail uploaded twice, db1's with its clock an hour behind
        stream = subprocess.run(["journalctl", "-o", "export"], capture_output=True, check=True, timeout=120).stdout
        entries = parse_export(stream)
        central = tmp / "remote"
        central.mkdir()
        half = len(entries) // 2
        web1 = export(as_host(entries[:half], "web1"))
        again = entries[half - 300:half]  # journal-upload restarted: these went twice
        db1 = as_host(entries[half:], "db1", skew_s=-3600)
        # db1 uploaded late into the same file: its mail arrives after web1's, stamped earlier
        remote(web1 + export(as_host(again, "web1")) + export(db1[:100]), central / "remote-web1.journal")
        remote(export(db1[100:]), central / "remote-db1.journal")
        # the same upload written into two files: libsystemd shows entries identical in both once
        twice = tmp / "twice"
        twice.mkdir()
        remote(web1, twice / "remote-web1.journal")
        remote(web1, twice / "remote-web1-again.journal")
        ours = [e for e in entries if any(f[0] == b"MESSAGE_ID" and f[1] in (record.MSG_MAIL.encode(),
                                                                             record.MSG_REFUSED.encode()) for f in e)]
        fleet(ours, tmp / "fleet")
        for args in (["index"], ["-D", str(central), "index"], ["-D", str(twice), "index"],
                     ["-D", str(tmp / "fleet"), "index"]):
            p = run_jm(*args)
            assert p.returncode == 0 and b"mail(s) added" in p.stderr, p.stderr
        # stored after the index was built: the journal's tail
        fleet_tail(ours, tmp / "fleet")
        fill(20, seed=8)
        special(bindir, tmp, "after")
        j.sync()
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip().replace("-", "")
        copies = sum((b"MESSAGE_ID", record.MSG_MAIL.encode()) in e for e in again)
        assert copies > 10
        yield Corpus(central, boot, copies, twice, tmp / "fleet")
    finally:
        j.stop()


FILTERS = [
    ("all", []),
    ("from", ["--from", "alice@example.com"]),
    ("to", ["--to", "ops@example.org"]),
    ("to-or", ["--to", "ops@example.org", "--to", "root"]),
    ("subject-text", ["--subject", "REPORT"]),
    ("subject-decoded", ["--subject", "grüße"]),
    ("subject-regex", ["--subject", "/^Cron <root@web1> job 1[0-3]$/"]),
    ("uid", ["--uid", str(USER_UID)]),
    ("user", ["--user", "root"]),
    ("caller", ["--caller", "mdadm", "--caller", "sudo"]),
    ("host", ["--host", os.uname().nodename]),
    ("host-none", ["--host", "nowhere"]),
    ("boot", ["--boot"]),
    ("grep-word", ["-g", "DegradedArray"]),
    ("grep-long-body", ["-g", LONG_WORD]),
    ("grep-smart-case", ["-g", "Disk"]),
    ("grep-decoded", ["-g", "été"]),
    ("grep-no-literal", ["-g", "(full|done) (ok|disk)"]),
    ("spooled", ["--spooled"]),
    ("refused", ["--refused"]),
    ("refused-subject", ["--refused", "--subject", "refused"]),
    ("since", ["--since", "-1h"]),
    ("until-past", ["--until", "yesterday"]),
    ("newest", ["-n", "7"]),
    ("newest-grep", ["-n", "3", "-g", "reboot required"]),
    ("reverse", ["-r", "-n", "5", "--caller", "cron"]),
    ("all-lines", ["-n", "all", "--to", "admin@example.org"]),
    ("combined", ["--user", "root", "--caller", "anacron", "--subject", "report", "-g", "ok"]),
]


def test_the_index_answers(corpus: Corpus) -> None:
    """The index is what answers (so the equality below is not the scan against itself):
    a row changed behind journal-mail's back shows up with the index and not without."""
    db = sqlite3.connect(str(INDEX_DIR / "local.sqlite3"))
    try:
        (rowid, entry), = db.execute("SELECT id, entry FROM mails WHERE subject LIKE 'qp before'").fetchall()
        db.execute("UPDATE mails SET entry = ? WHERE id = ?", (entry.replace("qp before", "qp TAMPERED"), rowid))
        db.commit()
        with_index, scan = both("list", "--json", "--subject", "qp")
        assert b"qp TAMPERED" in with_index and b"qp TAMPERED" not in scan
    finally:
        db.execute("UPDATE mails SET entry = ? WHERE id = ?", (entry, rowid))
        db.commit()
        db.close()


@pytest.mark.parametrize("args", [f[1] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_list_is_the_same_with_the_index(corpus: Corpus, args: list[str]) -> None:
    with_index, scan = both("list", "--json", *args)
    assert with_index == scan
    assert scan.count(b"\n") > 0 or args in (["--host", "nowhere"], ["--until", "yesterday"])


@pytest.mark.parametrize("by", ["host", "sender", "recipient", "caller", "unit", "subject", "day", "user"])
@pytest.mark.parametrize("args", [[], ["--caller", "cron"], ["-g", "backup"], ["--to", "root", "--sort", "bytes"]],
                         ids=["all", "caller", "grep", "to-bytes"])
def test_stats_are_the_same_with_the_index(corpus: Corpus, by: str, args: list[str]) -> None:
    with_index, scan = both("stats", "--by", by, *args)
    assert with_index == scan and scan.count(b"\n") > 2


@pytest.mark.parametrize("args", [["--format", "json"], ["--format", "mbox", "-g", "DegradedArray"],
                                  ["--format", "json", "-n", "4", "--subject", "split"]],
                         ids=["json-all", "mbox-grep", "json-split"])
def test_export_is_the_same_with_the_index(corpus: Corpus, args: list[str]) -> None:
    a, b = run_jm("export", *args), run_jm("export", *args, "--no-index")
    assert a.returncode == b.returncode == (65 if args == ["--format", "json"] else 0)  # the forged entry: 65
    assert a.stdout == b.stdout and a.stdout and a.stderr == b.stderr


CENTRAL = [["list", "--json"], ["list", "--json", "-n", "10", "-r"], ["list", "--json", "--host", "db1", "-g", "ok"],
           ["stats", "--by", "host"], ["stats", "--by", "day", "--json"], ["list"]]


@pytest.mark.parametrize("args", CENTRAL, ids=["list", "newest", "host-grep", "stats-host", "stats-day", "table"])
def test_central_is_the_same_with_the_index(corpus: Corpus, args: list[str]) -> None:
    a, b = run_jm("-D", str(corpus.central), *args), run_jm("-D", str(corpus.central), *args, "--no-index")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stderr == b.stderr
    if args == ["list", "--json"]:
        recs = [json.loads(line) for line in a.stdout.splitlines()]
        assert sum(r["duplicates"] for r in recs) == corpus.copies and {r["hostname"] for r in recs} == {"web1", "db1"}
        assert b"arrived after mail that their senders stamped later" in a.stderr


FLEET = [["list", "--json"], ["list", "--json", "-n", "10", "-r"], ["list", "--json", "-n", "25"],
         ["list", "--json", "--host", "h07"], ["list", "--json", "--host", "h02", "-n", "5"],
         ["list", "--json", "-g", "DegradedArray", "-n", "5"], ["list", "--json", "--subject", "report", "-n", "30"],
         ["list", "--json", "--since", "-1d", "--caller", "cron"], ["stats", "--by", "host"],
         ["stats", "--by", "day", "--json"], ["stats", "--by", "subject", "-g", "backup"],
         ["stats", "--by", "sender", "--from", "root"], ["export", "--format", "json", "-n", "20"], ["list"]]


@pytest.mark.parametrize("args", FLEET, ids=[" ".join(a) for a in FLEET])
def test_a_log_host_is_the_same_with_the_index(corpus: Corpus, args: list[str]) -> None:
    """50 hosts' files, late uploads, copies and a tail: the index's lazy merge gives the scan's answer."""
    a, b = run_jm("-D", str(corpus.fleet), *args), run_jm("-D", str(corpus.fleet), *args, "--no-index")
    assert a.returncode == b.returncode and a.stdout == b.stdout and a.stderr == b.stderr and a.stdout
    if args == ["list", "--json"]:
        recs = [json.loads(line) for line in a.stdout.splitlines()]
        hosts = {r["hostname"] for r in recs}
        assert len(hosts) == 51 and "h50" in hosts and sum(r["duplicates"] for r in recs) > 20
        assert b"arrived after mail that their senders stamped later" in a.stderr
        keys = [(r["hostname"], r["mail_id"]) for r in recs]
        assert len(keys) == len(set(keys))


WEB = ["/", "/?page=1", "/?q=no-such-words", "/?q=degradedarray", "/?unit=cron.service", "/?host=h07&q=report",
       "/?caller=cron&since=-1d", "/stats", "/stats?to=root", "/api/mails?n=all", "/api/mails?q=backup&n=30&reverse=1",
       "/api/mails?grep=Disk&n=all", "/api/mails?subject=grüße&n=all"]


@pytest.mark.parametrize("target", WEB)
@pytest.mark.parametrize("where", ["local", "central", "fleet"])
def test_the_web_is_the_same_with_the_index(corpus: Corpus, where: str, target: str) -> None:
    """The web inbox's pages and API (its search too) answer the same through the index as by the scan."""
    import io

    from journal_sendmail.reader.output import Io
    from journal_sendmail.reader.source import Source
    from journal_sendmail.reader.web.app import Inbox

    source = {"local": Source(), "central": Source(directory=str(corpus.central)),
              "fleet": Source(directory=str(corpus.fleet))}[where]
    got = []
    for index in (True, False):
        r = Inbox(source, index, Io(out=io.BytesIO(), err=io.BytesIO())).handle("GET", target)
        got.append((r.status, r.body if isinstance(r.body, bytes) else b"".join(r.body)))
    assert got[0] == got[1] and got[0][0] == 200


def test_the_index_answers_a_log_host(corpus: Corpus) -> None:
    """Rows changed behind journal-mail's back show with the index (-D), so the fleet's equality
    is the index's against the scan."""
    from journal_sendmail.reader import index
    from journal_sendmail.reader.source import Source

    db = sqlite3.connect(index.index_path(Source(directory=str(corpus.fleet)), str(INDEX_DIR)))
    was, now = '"subject":"', '"subject":"TAMPERED '
    try:
        db.execute("UPDATE mails SET entry = replace(entry, ?, ?) WHERE hostname = 'h07'", (was, now))
        db.commit()
        a, b = (ok(run_jm("-D", str(corpus.fleet), "list", "--json", "--host", "h07", "-n", "3", *more))
                for more in ([], ["--no-index"]))
        assert a.count(b"TAMPERED") == 3 and b"TAMPERED" not in b
    finally:
        db.execute("UPDATE mails SET entry = replace(entry, ?, ?) WHERE hostname = 'h07'", (now, was))
        db.commit()
        db.close()


@pytest.mark.parametrize("args", [["list", "--json"], ["stats", "--by", "host"], ["list", "--json", "-n", "3"]],
                         ids=["list", "stats", "newest"])
def test_entries_identical_in_two_files_are_one_as_without_the_index(corpus: Corpus, args: list[str]) -> None:
    a, b = run_jm("-D", str(corpus.twice), *args), run_jm("-D", str(corpus.twice), *args, "--no-index")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout
    if args == ["list", "--json"]:
        assert all(json.loads(line)["duplicates"] == 0 for line in a.stdout.splitlines())


def test_the_index_is_readable_exactly_by_those_who_read_the_journal(corpus: Corpus) -> None:
    st = (INDEX_DIR / "local.sqlite3").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, grp.getgrnam("adm").gr_gid)
    assert INDEX_DIR.stat().st_mode & 0o777 == 0o750
    mine = run_jm("list", "--json", user=USER_UID)  # reads its own journal file, not the index
    assert [r["subject"] for r in records(mine)] == ["user before", "user after"]
    p = run_jm("index", user=USER_UID)
    assert p.returncode in (73, 77) and b"Traceback" not in p.stderr, p.stderr




def test_a_schema_6_index_is_migrated_where_it_lies(corpus: Corpus) -> None:
    """0.3.0's central index (schema 6) lacks only mails_late: the next update adds it and says 7,
    without building the index anew (a log host's million mails took an hour to index)."""
    from journal_sendmail.reader import index
    from journal_sendmail.reader.source import Source

    path = index.index_path(Source(directory=str(corpus.central)), str(INDEX_DIR))
    before = ok(run_jm("-D", str(corpus.central), "list", "--json"))
    db = sqlite3.connect(path)
    try:
        db.execute("DROP INDEX mails_late")
        db.execute("UPDATE meta SET value = '6' WHERE key = 'schema'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'created'")  # a rebuild would write now
        db.commit()
        assert ok(run_jm("-D", str(corpus.central), "list", "--json")) == before  # 6 unread: the scan's answer
        p = run_jm("-D", str(corpus.central), "index")
        assert p.returncode == 0 and b"rebuilding" not in p.stderr, p.stderr
        meta = dict(db.execute("SELECT key, value FROM meta"))
        assert (meta["schema"], meta["created"]) == ("7", "1")
        plan = " ".join(str(r) for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT m.id FROM mails m WHERE m.first > 0 AND m.late = 1"))
        assert "mails_late" in plan, plan
    finally:
        db.close()
    assert ok(run_jm("-D", str(corpus.central), "list", "--json")) == before
