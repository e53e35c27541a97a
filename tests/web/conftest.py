"""Fixtures for the web inbox: ONE private journald filled through the sendmail under
test, ONE ``journal-mail serve`` on loopback over it, and a headless chromium.

Module-scoped (a journald and a browser per test would cost minutes); the tests
that add mail (live updates) look only for their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import harness, reader
from kit.net import Recorder
from kit.support import run_sendmail
from kit.web import Serve, fill, start_serve, stop


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
        reader.flush_to_persistent(j)  # per-user journal files: what an ordinary user may read
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
