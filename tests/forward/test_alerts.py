"""Repeats, silences and quiet hours against a real journald and a real smarthost (aiosmtpd), the clock moved by
an offset of the forwarder's own clock (the journal keeps the real time of the mails)."""

from __future__ import annotations

import datetime as dt
import html
import json
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kit import harness
from kit.forward import (
    MSG_FORWARD,
    Smarthost,
    dests,
    events,
    forward,
    forward_at,
    spawn_forward,
    store,
    subjects,
    text_of,
)
from kit.reader import as_user
from kit.support import wait_until
from kit.web import start_serve, stop

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]


@contextmanager
def running(cfg: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The following service, past its first pass; stopped by SIGTERM, which it must take cleanly."""
    proc = spawn_forward(cfg, err=tmp_path / "err")
    try:
        wait_until(lambda: (tmp_path / "state" / "dest-ops" / "state.json").exists(), 30, "the first pass")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "err").read_text()


@contextmanager
def inbox() -> Iterator[Callable[[str], str]]:
    """``journal-mail serve`` on loopback; yields GET PATH -> the page's text."""
    url, proc = start_serve("--no-index")
    try:
        def get(path: str) -> str:
            with urllib.request.urlopen(url + path, timeout=30) as r:
                return html.unescape(r.read().decode())

        yield get
    finally:
        stop(proc)


def logged(journald: harness.Journald, kind: str) -> None:
    wait_until(lambda: journald.sync() or bool(events(kind)), 30, f"the forwarder's {kind} event")


ALL = '[source]\nstart = "all"\n'
DISKS = '[[rule]]\nname = "disks"\nmatch = { subject = "SMART error*", user = "root" }\nroute = ["ops"]\n'
REPEATS = ALL + DISKS + 'group_by = ["host", "subject"]\nrepeat_interval = "1h"\n'


def test_fifty_repeats_in_an_interval_are_one_mail_then_one_summary_counting_49(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, *["SMART error on sda"] * 50, "SMART error on sdb")
    cfg = config(dests(smarthost) + REPEATS)
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    assert subjects(smarthost) == Counter({"SMART error on sda": 1, "SMART error on sdb": 1})
    assert forward(cfg, "--once").returncode == 0 and len(smarthost.received) == 2  # not due yet
    r = forward_at(cfg, 2 * 3600, "--once")
    assert r.returncode == 0, r.stderr
    (summary,) = smarthost.received[2:]
    subject = summary.header("Subject")
    assert "rule disks: 49 more since" in subject and "last at" in subject and "SMART error on sda" in subject
    body = text_of(summary)
    assert "49 more mail(s)" in body and "journal-mail show " in body and "(+29 more)" in body
    sda = [harness.one(e["MAIL_ID"]).decode() for e in harness.read_entries(["MAIL_SUBJECT=SMART error on sda"])]
    assert len(set(sda)) == 50 and all(i in body for i in sda[-20:])  # the newest 20 by their MAIL_ID
    assert summary.header("X-Journal-Mail-Forwarded")  # never forwarded again
    assert forward_at(cfg, 3 * 3600, "--once").returncode == 0 and len(smarthost.received) == 3  # said once
    journald.sync()
    assert len(events("repeat-summary")) == 1
    # after the window, the next mail of the group goes at once again
    store(sendmail, "SMART error on sda")
    assert forward_at(cfg, 3 * 3600, "--once").returncode == 0
    assert subjects(smarthost)["SMART error on sda"] == 2


def test_sigkill_mid_way_repeats_at_most_one_mail_and_loses_no_count(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    smarthost.handler.delay = 0.3
    store(sendmail, *[f"SMART error on disk {i}" for i in range(8)])
    store(sendmail, *["SMART error on disk 0"] * 12)
    cfg = config(dests(smarthost) + REPEATS)
    proc = spawn_forward(cfg, err=tmp_path / "err")
    try:
        wait_until(lambda: smarthost.handler.attempts >= 4, 60, "the first mails on their way")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    smarthost.handler.delay = 0
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    got = subjects(smarthost)
    assert set(got) == {f"SMART error on disk {i}" for i in range(8)}
    assert sum(got.values()) - 8 <= 1, got  # the mail the kill hit may go twice, no other
    r = forward_at(cfg, 2 * 3600, "--once")
    assert r.returncode == 0, r.stderr
    (summary,) = smarthost.received[sum(got.values()):]
    assert "12 more since" in summary.header("Subject")  # every repeat counted, none twice


SILENCED = ALL + '[digest.later]\nto = ["ops"]\nevery = "1d"\n' + DISKS + 'digest = "later"\n'


def test_a_silence_added_while_the_service_runs_holds_the_mail_into_the_digest_until_it_ends(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    cfg = config(dests(smarthost) + SILENCED)
    with running(cfg, tmp_path):
        r = forward(cfg, "silence", "add", "--match", "subject=SMART*", "user=root", "--for", "2d",
                    "--comment", "disk swapped on Friday")
        assert r.returncode == 0, r.stderr
        sid = r.stdout.decode().strip()
        logged(journald, "silence-start")  # the running service saw it
        listed = forward(cfg, "silence", "list", "--json")
        (rec,) = [json.loads(x) for x in listed.stdout.splitlines()]
        assert rec["id"] == sid and rec["active"] and rec["comment"] == "disk swapped on Friday"
        assert f"silence {sid} until" in forward(cfg, "--dry-run").stdout.decode()
        store(sendmail, "SMART error on sda")
        logged(journald, "silenced")
        assert smarthost.received == []
        (sda,) = [harness.one(e["MAIL_ID"]).decode() for e in harness.read_entries(["MAIL_SUBJECT=SMART error on sda"])]
        forged = (f"MESSAGE_ID={MSG_FORWARD}\nMAIL_ID={sda}\nFORWARD_EVENT=delivered\nFORWARD_SILENCE=x\n"
                  f"FORWARD_UNTIL=2999-01-01T00:00:00Z\nMESSAGE=forged: forwarded to evil\n")
        for event in ("delivered", "silence-start"):  # a local user's word is not the forwarder's
            subprocess.run([*as_user(65534), "logger", "--journald"], check=True, timeout=30,
                           input=forged.replace("delivered", event).encode())
        journald.sync()
        assert len(harness.read_entries([f"MESSAGE_ID={MSG_FORWARD}", "_UID=65534"])) == 2  # they are there
        with inbox() as get:  # the web inbox shows what the forwarder did, and what is silenced
            assert "forged" not in get(f"/mail/{sda}") and "forged" not in get("/stats")
            assert f"silenced by {sid}" in get(f"/mail/{sda}") and "collected into digest later" in get(f"/mail/{sda}")
            assert "subject=SMART* user=root" in get("/stats") and "disk swapped on Friday" in get("/stats")
        assert forward(cfg, "--dry-run").stdout.decode().count(f"silenced by {sid}") == 1
        status = forward(cfg, "status")
        assert f"{sid}: subject=SMART* user=root" in status.stdout.decode(), status
        assert forward(cfg, "silence", "expire", sid).returncode == 0
        logged(journald, "silence-end")
        store(sendmail, "SMART error on sdb")
        wait_until(lambda: len(smarthost.received) == 1, 30, "mail sent again once the silence ended")
        (sdb,) = [harness.one(e["MAIL_ID"]).decode() for e in harness.read_entries(["MAIL_SUBJECT=SMART error on sdb"])]
        with inbox() as get:
            assert "No silence of journal-mail forward runs" in get("/stats")
            assert "forwarded to ops" in get(f"/mail/{sdb}")
    assert subjects(smarthost) == Counter({"SMART error on sdb": 1})
    assert [harness.one(e["FORWARD_SILENCE"]).decode() for e in events("silenced")] == [sid]
    assert forward(cfg, "silence", "expire", sid).returncode == 66  # ended already
    r = forward(cfg, "--digest-now")
    assert r.returncode == 0, r.stderr
    digest = text_of(smarthost.received[-1])
    assert "SMART error on sda" in digest and f"silenced by {sid}" in digest


def test_a_bad_silence_or_duration_exits_78_naming_it(config: Config, smarthost: Smarthost) -> None:
    cfg = config(dests(smarthost))
    for args, key in ((["--match", "colour=red", "--for", "1h"], "--match"),
                      (["--match", "host=x", "--for", "soon"], "--for")):
        r = forward(cfg, "silence", "add", *args)
        assert r.returncode == 78 and key in r.stderr.decode(), r.stderr


def quiet(start: dt.datetime) -> str:
    """A rule whose hours open at ``start`` (UTC) for an hour, and an urgent one."""
    a, b = start.strftime("%H:%M"), (start + dt.timedelta(hours=1)).strftime("%H:%M")
    return f"""
[source]
start = "all"

[digest.overnight]
to = ["ops"]

[[rule]]
name = "urgent"
match = {{ subject = "RAID*", user = "root" }}
route = ["ops"]
urgent = true

[[rule]]
name = "can wait"
match = {{ subject = "backup*", user = "root" }}
route = ["ops"]
hours = "Mon-Sun {a}-{b}"
timezone = "UTC"
quiet_digest = "overnight"
"""


def test_quiet_hours_hold_mail_into_a_digest_sent_when_they_open_and_urgent_mail_goes_at_once(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    opens = now + dt.timedelta(hours=3)
    cfg = config(dests(smarthost) + quiet(opens))
    store(sendmail, "backup report", "RAID degraded", "backup report 2")
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    assert subjects(smarthost) == Counter({"RAID degraded": 1})
    journald.sync()
    assert len(events("held")) == 2
    status = forward(cfg, "status", "--json")
    (g,) = json.loads(status.stdout)["digests"]
    assert g["open_mails"] == 2 and g["next_due"] == opens.strftime("%Y-%m-%dT%H:%M:%SZ"), g
    until_open = opens.timestamp() - time.time()
    assert forward_at(cfg, until_open - 120, "--once").returncode == 0 and len(smarthost.received) == 1
    r = forward_at(cfg, until_open + 30, "--once")
    assert r.returncode == 0, r.stderr
    assert len(smarthost.received) == 2
    digest = smarthost.received[1]
    assert "digest overnight: 2 mail(s)" in digest.header("Subject")
    assert "outside the hours of ops" in text_of(digest)
    # inside the hours, mail goes at once
    store(sendmail, "backup report 3")
    assert forward_at(cfg, until_open + 60, "--once").returncode == 0
    assert subjects(smarthost)["backup report 3"] == 1


@pytest.mark.parametrize(("extra", "key"), [
    ('repeat_interval = "often"\n', "rule[1].repeat_interval"),
    ('hours = "Mon-Fri 08:00-20:00"\n', "rule[1].hours"),
])
def test_a_bad_alert_key_exits_78_naming_it(config: Config, smarthost: Smarthost, extra: str, key: str) -> None:
    cfg = config(dests(smarthost) + '[[rule]]\nmatch = { user = "root" }\nroute = ["ops"]\n' + extra)
    r = forward(cfg, "--once")
    assert r.returncode == 78 and key in r.stderr.decode(), r.stderr


EXPECT = ALL + """
[[expect]]
name = "backup"
match = { subject = "backup report*", user = "root" }
every = "1h"
grace = "30m"
hosts = ["ghost"]
route = ["ops"]
"""


def test_an_expectation_whose_host_stops_sending_says_missing_once_then_resolved_once_across_restarts(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "backup report", "SMART error on sda")
    cfg = config(dests(smarthost) + EXPECT)
    here = harness.one(harness.read_entries(["MAIL_SUBJECT=backup report"])[0]["_HOSTNAME"]).decode()
    for offset in (0, 3600 + 25 * 60):  # every forwarder run is a new process: each one a restart
        r = forward_at(cfg, offset, "--once")
        assert r.returncode == 0, r.stderr
    assert smarthost.received == []
    for offset in (3600 + 35 * 60, 3600 + 40 * 60, 2 * 3600):
        assert forward_at(cfg, offset, "--once").returncode == 0
    assert sorted(m.header("Subject").split("] ", 1)[1] for m in smarthost.received) == sorted([
        f"expected backup from {here}, last seen " + rfc(harness.read_entries(["MAIL_SUBJECT=backup report"])[0]),
        "expected backup from ghost, last seen never"])
    status = json.loads(forward(cfg, "status", "--json").stdout)
    (x,) = status["expectations"]
    assert {h["host"]: h["missing"] for h in x["hosts"]} == {here: True, "ghost": True}
    # it comes back: its mail, written at the real time, reached the journal after the forwarder's last pass
    # (whose clock is two hours ahead): it counts as seen then, and resolves
    store(sendmail, "backup report")
    r = forward_at(cfg, 2 * 3600 + 60, "--once")
    assert r.returncode == 0, r.stderr
    (resolved,) = smarthost.received[2:]
    assert resolved.header("Subject").split("] ", 1)[1].startswith(f"resolved: backup from {here} came again at ")
    assert "its own time said" in text_of(resolved)  # two hours before the forwarder's clock
    for offset in (2 * 3600 + 120, 2 * 3600 + 600):
        assert forward_at(cfg, offset, "--once").returncode == 0
    assert len(smarthost.received) == 3
    journald.sync()
    assert len(events("expect-missing")) == 2 and len(events("expect-resolved")) == 1


def rfc(entry: dict) -> str:  # type: ignore[type-arg]
    return dt.datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) // 1_000_000,
                                     dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
