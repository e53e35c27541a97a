"""On a log host: three hosts upload to systemd-journal-remote, the forwarder reads its directory (-D),
and a host whose clock is behind and that uploads late still gets its urgent mail forwarded.

host3's journald runs under libfaketime two hours behind, so its mail carries
times older than everything the forwarder has already handled; its upload
is stopped while the others' mail is forwarded, then resumed.  host3 lands
in a journal file of its own, as a host at another address does (here: its
own journal-remote writing into the same directory).  One cursor for the
whole directory would skip that mail (the journal orders entries of
different files by time); the forwarder keeps one per host.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit import fleet as fleetkit
from kit import harness
from kit.forward import Smarthost, dests, forward, subjects
from kit.support import run_sendmail, wait_until

Config = Callable[[str], Path]
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[list[fleetkit.Host], fleetkit.Remote]]:
    for need in (fleetkit.REMOTE, fleetkit.UPLOAD, FAKETIME):
        if not os.path.exists(need):
            pytest.skip(f"needs {need}")
    hosts: list[fleetkit.Host] = []
    remote = fleetkit.Remote(tmp_path / "remote").start()
    plain = fleetkit.JOURNALD
    try:
        for n in (1, 2, 3):
            if n == 3:  # its clock two hours behind (journald's only: the rest of the machine is untouched)
                fleetkit.JOURNALD = (f"env LD_PRELOAD={FAKETIME} FAKETIME=-2h FAKETIME_DONT_FAKE_MONOTONIC=1 "
                                     f"FAKETIME_DONT_RESET=1 {plain}")
            hosts.append(fleetkit.Host(f"host{n}", tmp_path).start())
            fleetkit.JOURNALD = plain
        yield hosts, remote
    finally:
        fleetkit.JOURNALD = plain
        for h in hosts:
            h.stop()
            subprocess.run(["rm", "-rf", h.journal_dir], check=False)
        remote.stop()


class FileRemote(fleetkit.Remote):
    """journal-remote writing one named file in ``output`` (a second log-host listener)."""

    def __init__(self, output: Path, name: str) -> None:
        super().__init__(output)
        self.name = name

    def start(self) -> FileRemote:
        with open(self.output.parent / f"journal-remote-{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [fleetkit.REMOTE, f"--listen-http=127.0.0.1:{self.port}", "--split-mode=none",
                 f"--output={self.output}/{self.name}"],
                stdout=log, stderr=log)
        wait_until(lambda: _listening(self.port), 10, "journal-remote to listen")
        return self


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def uploaded(remote: fleetkit.Remote, subject: str) -> bool:
    return bool(fleetkit.remote_entries(remote.output, f"MAIL_SUBJECT={subject}"))


def test_a_host_that_uploads_late_with_its_clock_behind_still_gets_its_urgent_mail_forwarded(
    fleet: tuple[list[fleetkit.Host], fleetkit.Remote], bindir: Path, config: Config, smarthost: Smarthost
) -> None:
    hosts, remote = fleet
    remote3 = FileRemote(remote.output, "remote-host3.journal").start()
    envs = {h.name: {"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(h.config())} for h in hosts}

    def send(host: fleetkit.Host, subject: str) -> None:
        r = run_sendmail(bindir, ["-i", "root"], f"To: root\nSubject: {subject}\n\non {host.name}\n".encode(),
                         env=envs[host.name])
        assert r.returncode == 0, r.stderr

    for h in hosts:
        send(h, f"hello from {h.name}")
        h.sync()
    uploads = [fleetkit.Upload(h, remote if h is not hosts[2] else remote3).start() for h in hosts]

    def arrived(*subjects: str) -> Callable[[], bool]:
        def check() -> bool:
            for u in uploads:  # Restart=on-failure, as the real unit does
                if not u.alive() and (u is not uploads[2] or not paused):
                    u.start()
            return all(uploaded(remote, s) for s in subjects)

        return check

    paused = False
    try:
        wait_until(arrived(*(f"hello from {h.name}" for h in hosts)), 60, "the hellos")
        cfg = config(dests(smarthost) + '[[rule]]\nname = "urgent"\nmatch = { subject = "URGENT*" }\n'
                     'route = ["ops"]\n')
        args = ("-D", str(remote.output), "--once")
        r = forward(cfg, *args)  # first start ("now"): every host's cursor at its newest mail
        assert r.returncode == 0, r.stderr
        paused = True
        uploads[2].stop()  # host3 goes quiet
        send(hosts[2], "URGENT host3 disk failing")  # stamped two hours ago by host3's clock
        for h in hosts[:2]:
            send(h, f"URGENT {h.name}")
        wait_until(arrived(*(f"URGENT {h.name}" for h in hosts[:2])), 60, "the others' mail")
        assert forward(cfg, *args).returncode == 0
        assert subjects(smarthost) == Counter({"URGENT host1": 1, "URGENT host2": 1})
        assert sorted(p.name for p in remote.output.iterdir()) == ["remote-127.0.0.1.journal", "remote-host3.journal"]
        paused = False
        uploads[2].start()  # host3 uploads, late
        wait_until(arrived("URGENT host3 disk failing"), 60, "host3's late upload")
        late = fleetkit.remote_entries(remote.output, "MAIL_SUBJECT=URGENT host3 disk failing")[0]
        first = fleetkit.remote_entries(remote.output, "MAIL_SUBJECT=URGENT host1")[0]
        assert int(late["__REALTIME_TIMESTAMP"]) < int(first["__REALTIME_TIMESTAMP"]) - 3600 * 10**6
        r = forward(cfg, *args)
        assert r.returncode == 0, r.stderr
        assert subjects(smarthost) == Counter({"URGENT host1": 1, "URGENT host2": 1, "URGENT host3 disk failing": 1})
        m = next(m for m in smarthost.received if "host3" in m.header("Subject"))
        assert m.header("Subject") == "[host3] URGENT host3 disk failing"
    finally:
        for u in uploads:
            u.stop()
        remote3.stop()
    harness.clean_journal_dirs()
