"""An expectation on a log host: the forwarder reads journal-remote's directory (-D), hosts upload late and their
clocks differ, and only the host that stopped is missing, once, then resolved once, across restarts.

Each host's mail is a real mail written into a private journald, exported (``journalctl -o export``, the stream
journal-upload sends), given the host's name and the time by the host's own clock, and written into that host's
file in the central directory by the real ``systemd-journal-remote --output=FILE -`` when the test wants the
upload to happen (so no per-host journald has to be running at upload time).  The forwarder's clock is moved by
an offset of its time.time, as in test_alerts; the hosts' clocks are the entries' __REALTIME_TIMESTAMPs.

  web1  sends daily, on time, uploads at once
  db1   its clock three hours behind, its upload an hour late: by its own word its mail is 4 h older than when it
        reached the log host, so a forwarder that believed it would take db1 for missing before its next upload
  mx1   stops after its first report; its upload (of the report it did send, and one more) comes hours late
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kit import harness
from kit.fleet import REMOTE
from kit.forward import Smarthost, dests, events, forward_argv, forward_at, store, text_of
from kit.reader import Entry, as_host, export, parse_export, remote
from kit.support import ENV, wait_until

from journal_sendmail.schema import MSG_MAIL

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]
H, D = 3600, 86400
EXPECT = """
[source]
start = "all"

[[expect]]
match = { subject = "report*", user = "root" }
name = "report"
every = "1d"
grace = "2h"
per = "host"
route = ["ops"]
"""

pytestmark = pytest.mark.skipif(not os.path.exists(REMOTE), reason="needs systemd-journal-remote")


def stamped(entries: list[Entry], host: str, at: float) -> list[Entry]:
    """The mail's entries as ``host`` sends them, its clock saying ``at``."""
    us = str(int(at * 1_000_000)).encode()
    return [[(k, us if k in (b"__REALTIME_TIMESTAMP", b"_SOURCE_REALTIME_TIMESTAMP") else v) for k, v in e]
            for e in as_host(entries, host)]


@contextmanager
def serving_at(cfg: Path, offset: float, directory: Path, err: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The following service on the log host's directory, its clock ``offset`` ahead; stopped by SIGTERM."""
    with open(err, "ab") as f:
        proc = subprocess.Popen(forward_argv(cfg, offset, "-D", str(directory)), stdout=f, stderr=f, env=ENV)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.read_text()


def test_on_a_log_host_a_late_skewed_host_is_not_missing_and_a_stopped_one_is_missing_then_resolved_once(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    store(sendmail, *[f"report {i}" for i in range(9)], "SMART error on sda")  # the last matches nothing
    journald.sync()
    p = subprocess.run(["journalctl", "-o", "export", f"MESSAGE_ID={MSG_MAIL}"], capture_output=True, check=True,
                       timeout=60)
    mails = parse_export(p.stdout)
    assert len(mails) == 10
    central = tmp_path / "remote"
    central.mkdir()
    t0 = time.time()
    used = iter(mails)

    def upload(host: str, *claimed: float) -> None:
        """``host``'s upload arrives: one mail per time its clock stamped."""
        stream = b"".join(export(stamped([next(used)], host, t0 + t)) for t in claimed)
        remote(stream, central / f"remote-{host}.journal")

    cfg = config(dests(smarthost) + EXPECT)

    def at(offset: float) -> None:
        r = forward_at(cfg, offset, "-D", str(central), "--once")  # a new process: a restart each time
        assert r.returncode == 0, r.stderr.decode()

    def notices() -> list[str]:
        return [m.header("Subject").split("] ", 1)[1] for m in smarthost.received]

    def seen() -> dict[str, dict[str, Any]]:
        s = forward_at(cfg, 0, "status", "--json")
        (x,) = json.loads(s.stdout)["expectations"]
        return {h["host"]: h for h in x["hosts"]}

    def pass_start() -> float:
        doc = json.loads((tmp_path / "state" / "expect-all" / "state.json").read_bytes())
        return float(doc["expect"]["pass_start"])

    def passed(before: float) -> Callable[[], bool]:
        return lambda: pass_start() > before

    def rfc(t: float) -> str:
        return dt.datetime.fromtimestamp(int(t0 + t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # day 0: every host's first report (db1's clock says three hours ago)
    upload("web1", 0)
    upload("db1", -3 * H)
    upload("mx1", 0)
    at(10 * 60)
    assert sorted(seen()) == ["db1", "mx1", "web1"]
    # day 1: web1 on time; db1's report, stamped D - 3h, reaches the log host at D + 1h; mx1's upload stalls
    upload("web1", D)
    at(D + 10 * 60)
    upload("db1", D - 3 * H)
    at(D + H + 10 * 60)
    db1 = seen()["db1"]
    assert db1["claimed"] == rfc(D - 3 * H) and db1["last_seen"] >= rfc(D + 10 * 60), db1  # seen when it came
    assert notices() == []
    at(D + 2 * H - 60)  # mx1 still within its grace
    assert notices() == []
    at(D + 2 * H + 10 * 60)
    assert notices() == [f"expected report from mx1, last seen {rfc(0)}"]
    for offset in (D + 2 * H + 20 * 60, D + 3 * H):  # restarts: nothing said twice
        at(offset)
    assert len(smarthost.received) == 1
    # day 2: web1 on time, db1 late again; by db1's own clock its last mail was D - 3h, more than every + grace
    # before 2D - 30m: only its being seen when it reached the log host keeps it from being missing
    upload("web1", 2 * D)
    at(2 * D - 30 * 60)
    at(2 * D + 10 * 60)
    upload("db1", 2 * D - 3 * H)
    assert len(smarthost.received) == 1, notices()
    # mx1's late upload arrives while the following service runs: the report it sent on day 1 and one more
    err = tmp_path / "err"
    with serving_at(cfg, 2 * D + H + 10 * 60, central, err):
        wait_until(lambda: seen()["db1"]["claimed"] == rfc(2 * D - 3 * H), 60, "db1's day-2 report read")
        upload("mx1", D, D + 4 * H)
        wait_until(lambda: len(smarthost.received) == 2, 60, "the resolved notice")
    assert notices()[1] == f"resolved: report from mx1 came again at {seen()['mx1']['last_seen']}"
    assert "its own time said" in text_of(smarthost.received[1])  # mx1's mail is hours older than its arrival
    assert seen()["mx1"]["claimed"] == rfc(D + 4 * H)
    for offset in (2 * D + 2 * H, 2 * D + 3 * H):  # restarts after the service: nothing said again
        at(offset)
    with serving_at(cfg, 2 * D + 3 * H, central, err):  # and a restarted service: two whole passes
        for _ in range(2):
            wait_until(passed(pass_start()), 30, "a pass of the restarted service")
    assert len(smarthost.received) == 2, notices()
    assert {m.header("Message-ID") for m in smarthost.received} == {m.header("Message-ID") for m in
                                                                    smarthost.received[:2]}
    journald.sync()
    assert len(events("expect-missing")) == 1 and len(events("expect-resolved")) == 1
    assert {h: v["missing"] for h, v in seen().items()} == {"db1": False, "mx1": False, "web1": False}
