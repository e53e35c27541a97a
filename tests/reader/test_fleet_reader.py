"""What a central journal has and a local one has not: the same mail twice, hosts
whose clocks disagree.  Real entries from a real journald, exported
(``journalctl -o export``, the stream journal-upload sends), changed where a
fleet would change them (another host's name, machine id, boot id and clock)
and written into journal files by the real systemd-journal-remote."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kit import harness
from kit.reader import Entry, as_host, export, message, ok, parse_export, records, remote, run_jm
from kit.support import json_raw

from journal_sendmail.record import MSG_MAIL

REMOTE = "/lib/systemd/systemd-journal-remote"
Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]

pytestmark = pytest.mark.skipif(not os.path.exists(REMOTE), reason="needs systemd-journal-remote")


# -- mail ------------------------------------------------------------------------


def send_mails(journald: harness.Journald, sendmail: Sendmail, subjects: list[str],
               big: bytes | None = None) -> dict[str, str]:
    """Send one mail per subject (and ``big``); MAIL_ID -> sha256 of each."""
    sent = {}
    for data in [message(s) for s in subjects] + ([big] if big else []):
        p = sendmail(["-v", "-i", "root"], data)
        assert p.returncode == 0, p.stderr
        sent[re.search(rb"mail ([0-9a-f]{32})", p.stderr).group(1).decode()] = hashlib.sha256(data).hexdigest()  # type: ignore[union-attr]
    journald.sync()
    return sent


def host_export(*matches: str) -> list[Entry]:
    p = subprocess.run(["journalctl", "-o", "export", *matches], capture_output=True, check=True, timeout=60)
    return parse_export(p.stdout)


def listed(directory: Path, *extra: str) -> tuple[list[dict[str, object]], str]:
    p = run_jm("list", "-D", str(directory), "--json", *extra)
    return records(p), p.stderr.decode()


# -- duplicates --------------------------------------------------------------------

BIG = b"From: backup@example.org\nTo: root\nSubject: big\n\n" + b"\xe9 0123456789abcdef\n" * 3000


@pytest.mark.parametrize(
    "layout, copies",
    [
        # journal-upload restarted: the entry at its saved cursor arrives again, in the same file
        ("same file", 1),
        # a host's journal uploaded twice into two files: libsystemd itself merges
        # entries that are identical in two files, so no copy is left to count
        ("two files", 0),
    ],
    ids=["uploaded-twice-one-file", "uploaded-twice-two-files"],
)
def test_a_mail_uploaded_twice_is_shown_once(journald: harness.Journald, sendmail: Sendmail,
                                            tmp_path: Path, layout: str, copies: int) -> None:
    sent = send_mails(journald, sendmail, ["disk full", "backup done"], big=BIG)
    stream = export(as_host(host_export(), "web1"))  # everything: mail, parts and journald's own
    central = tmp_path / "remote"
    central.mkdir()
    if layout == "same file":
        remote(stream + stream, central / "remote-web1.journal")
    else:
        remote(stream, central / "remote-web1.journal")
        remote(stream, central / "remote-web1-again.journal")
    seen = Counter(harness.one(e["MAIL_ID"]).decode()
                   for e in harness.read_entries([f"MESSAGE_ID={MSG_MAIL}"], path=str(central)))
    assert seen == {i: 1 + copies for i in sent}, "the journal files do not hold what the test means to test"

    recs, _ = listed(central)
    assert Counter(r["mail_id"] for r in recs) == Counter(list(sent))
    assert {r["mail_id"]: r["duplicates"] for r in recs} == {i: copies for i in sent}

    table = ok(run_jm("list", "-D", str(central))).decode().splitlines()[1:]
    assert len(table) == len(sent)
    assert all(("[dup]" in line) == bool(copies) for line in table), table

    exported = records(run_jm("export", "-D", str(central), "--format", "json"))
    assert {r["mail_id"]: hashlib.sha256(json_raw(r)).hexdigest() for r in exported} == sent
    assert len(exported) == len(sent)
    stats = records(run_jm("stats", "-D", str(central), "--by", "host", "--json"))
    assert stats == [{"host": "web1", "mails": len(sent), "bytes": sum(r["size"] for r in recs)}]  # type: ignore[misc]


# -- clocks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "skew_s, order, note",
    [
        (0, ["a1", "a2", "b1", "b2"], False),
        # db1's clock is an hour behind: its mail, sent after web1's, carries earlier times
        (-3600, ["b1", "b2", "a1", "a2"], True),
        # db1's clock is an hour ahead: the arrival order is also the senders' order
        (3600, ["a1", "a2", "b1", "b2"], False),
    ],
    ids=["same-clock", "clock-behind", "clock-ahead"],
)
def test_hosts_with_clock_skew_are_ordered_by_the_senders_time(
    journald: harness.Journald, sendmail: Sendmail, tmp_path: Path, skew_s: int, order: list[str], note: bool
) -> None:
    sent = send_mails(journald, sendmail, ["a1", "a2", "b1", "b2"])
    ids = list(sent)
    entries = host_export(f"MESSAGE_ID={MSG_MAIL}")
    by_id = {dict(f)[b"MAIL_ID"].decode(): f for f in entries}
    web1 = as_host([by_id[i] for i in ids[:2]], "web1")
    db1 = as_host([by_id[i] for i in ids[2:]], "db1", skew_s)
    central = tmp_path / "remote"
    central.mkdir()
    remote(export(web1 + db1), central / "remote-all.journal")  # arrival order: web1's, then db1's

    recs, stderr = listed(central)
    assert [r["subject"] for r in recs] == order
    assert [r["hostname"] for r in recs] == ["db1" if s.startswith("b") else "web1" for s in order]
    assert ("arrived" in stderr) == note, stderr
    newest = records(run_jm("list", "-D", str(central), "--json", "-n", "1"))
    assert [r["subject"] for r in newest] == order[-1:]
    exported = records(run_jm("export", "-D", str(central), "--format", "json"))
    assert [r["subject"] for r in exported] == order


# -- where to read, before or after the command -------------------------------------------


@pytest.mark.parametrize(
    "args, code",
    [
        (["-D", "{dir}", "list", "--json"], 0),  # as journal-mail(1) and the README write it
        (["list", "-D", "{dir}", "--json"], 0),
        (["-D", "{dir}", "list", "--namespace", "mail"], 64),
        (["--namespace", "mail", "stats", "--file", "{dir}/x.journal"], 64),
    ],
    ids=["before-command", "after-command", "two-sources", "two-sources-file"],
)
def test_source_options_before_or_after_the_command(tmp_path: Path, args: list[str], code: int) -> None:
    p = run_jm(*(a.format(dir=tmp_path) for a in args))
    assert p.returncode == code, p.stderr.decode()
    if code:
        assert b"only one of -D, --file and --namespace" in p.stderr
    else:
        assert p.stdout == b""
