"""Fixtures for the web inbox: ONE private journald filled through the sendmail under
test, ONE ``journal-mail serve`` on loopback over it, and a headless chromium.

Module-scoped (a journald and a browser per test would cost minutes); the tests
that add mail (live updates) look only for their own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "reader"))
import harness
import readerkit
from support import run_sendmail, wait_until
from webkit import Recorder, fill

SHOTS = Path(os.environ.get("JOURNAL_MAIL_SHOTS", "/var/tmp/journal-mail-web-shots"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve:
    """One ``journal-mail serve`` and what the journal under it holds."""

    url: str
    proc: subprocess.Popen[bytes]
    mails: dict[str, bytes] = field(default_factory=dict)  # subject -> raw bytes sent
    ids: dict[str, str] = field(default_factory=dict)  # subject -> MAIL_ID
    send: Callable[..., Any] | None = None
    recorder: Recorder | None = None

    def get(self, path: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            try:
                return e.code, dict(e.headers.items()), e.read()
            finally:
                e.close()  # Python 3.14: an unclosed HTTPError is a ResourceWarning


def start_serve(*args: str, user: int | None = None, prefix: list[str] | None = None,
                listen: str | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """``journal-mail serve ARGS`` on a free loopback port (or ``listen``: ``unix:PATH``,
    ``HOST:PORT``), as ``user`` or under ``prefix`` (setpriv …); its URL (``unix:PATH``
    for a unix socket) once it listens."""
    if listen is None:
        listen = f"127.0.0.1:{free_port()}"
    prefix = prefix if prefix is not None else readerkit.as_user(user) if user is not None else []
    proc = subprocess.Popen([*prefix, *readerkit.READER, "serve", "--listen", listen, *args],
                            env=readerkit.ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if listen.startswith("unix:"):
        url = listen
    else:
        host, _, port = listen.rpartition(":")
        url = f"http://{host}:{port}"

    def up() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if listen.startswith("unix:"):
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(listen[5:])
                    return True
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True
        except OSError:
            return False

    wait_until(up, what="journal-mail serve listening")
    return url, proc


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return err


@pytest.fixture(scope="module")
def inbox(bindir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    harness.clean_journal_dirs()
    j = harness.Journald(activated=True).start()
    recorder = Recorder().start()
    conf = tmp_path_factory.mktemp("conf") / "journal-sendmail.conf"
    conf.write_text("[journal-sendmail]\npart_size = 4K\n")
    conf.chmod(0o644)

    def send(raw: bytes, *args: str, split: bool = False) -> None:
        env = {"JOURNAL_SENDMAIL_CONFIG": str(conf)} if split else {}
        p = run_sendmail(bindir, ["-i", *(args or ("-t",))], raw, env={"PATH": "/usr/bin:/bin", **env})
        assert p.returncode == 0, p.stderr

    try:
        readerkit.flush_to_persistent(j)  # per-user journal files: what an ordinary user may read
        mails = fill(send, recorder.url)
        j.sync()
        url, proc = start_serve()
        s = Serve(url, proc, mails, send=send, recorder=recorder)
        for line in s.get("/api/mails")[2].decode().splitlines():
            rec = __import__("json").loads(line)
            s.ids[rec["subject"]] = rec["mail_id"]
        try:
            yield s
        finally:
            err = stop(proc)
            assert proc.returncode == 0, err.decode(errors="replace")
    finally:
        recorder.stop()
        j.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                "--disable-extensions", "--lang=en-US"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
