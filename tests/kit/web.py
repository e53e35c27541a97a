"""Helpers for the web inbox's tests: ``journal-mail serve`` started and stopped, a client
for it, and the mail the tests read, hostile mail among it (its "remote" server, that a
tracking pixel or a stylesheet in a mail points at, is kit.net's recorder)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit import reader
from kit.net import Recorder, free_port
from kit.support import wait_until

SHOTS = Path(os.environ.get("JOURNAL_MAIL_SHOTS", "/var/tmp/journal-mail-web-shots"))



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
    prefix = prefix if prefix is not None else reader.as_user(user) if user is not None else []
    proc = subprocess.Popen([*prefix, *reader.READER, "serve", "--listen", listen, *args],
                            env=reader.ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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



def shot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# Subjects the tests look for
CRON = "Cron <root@web1> run-parts /etc/cron.daily"
MDADM = "DegradedArray event on /dev/md0:web1"
BACKUP = "backup report with attachment"
SPLIT = "a big report, stored in parts"
LATIN = "8-bit body bytes"
HOSTILE = '<script>window.__pwned=1;alert(1)</script><img src=x onerror="window.__pwned=2">'
HTML = "html mail with script, pixel and javascript links"
ALT = "alternative plain and html"
BEACON = "html mail that would tell the sender it was read"

EVIL_NAME = '"<b onmouseover=alert(2)>Evil</b><script>alert(2)</script>" <evil@example.org>'


def html_body(recorder: str) -> str:
    return (f'<html><head><link rel="stylesheet" href="{recorder}/style.css">'
            f'<style>body {{ background: url("{recorder}/bg.png"); }}</style></head><body>'
            f'<h1 id="hello">Hello from HTML</h1>'
            f'<script>parent.__pwned = 3; window.top.__pwned = 3; alert(3);</script>'
            f'<img id="pixel" src="{recorder}/pixel.png?u=1" width="1" height="1">'
            f'<iframe src="{recorder}/frame.html"></iframe>'
            f'<a id="jslink" href="javascript:parent.__pwned=4;alert(4)">click me</a> '
            f'<a href="javascript:alert(5)">and me</a>'
            f'<form action="{recorder}/form"><button id="sub">go</button></form>'
            f'<img src=x onerror="parent.__pwned=5">'
            f'</body></html>\n')


def beacon_body(recorder: str) -> str:
    """What opens a connection with no CSP to stop it: preconnect, dns-prefetch, prefetch,
    a frame, a refresh, a base for the links, a link to click."""
    return (f'<html><head><link rel="preconnect" href="{recorder}"><link rel="dns-prefetch" href="{recorder}">'
            f'<link rel="prefetch" href="{recorder}/prefetch"><link rel="preload" as="image" href="{recorder}/p.png">'
            f'<meta http-equiv="refresh" content="0; url={recorder}/refresh"><base href="{recorder}/base/"></head>'
            f'<body><h1>Read me</h1><iframe src="{recorder}/iframe"></iframe><frameset><frame src="{recorder}/f">'
            f'</frameset><object data="{recorder}/object"></object><embed src="{recorder}/embed">'
            f'<a href="{recorder}/click">the report</a> <a href="relative">relative</a>'
            f'<form action="{recorder}/form" method="get"><input name="q"><button id="go">go</button></form>'
            f'</body></html>\n')


def beacon_mail(recorder: str) -> bytes:
    return (f"From: news@example.org\nTo: root\nSubject: {BEACON}\nMIME-Version: 1.0\n"
            f"Content-Type: text/html; charset=utf-8\n\n{beacon_body(recorder)}").encode()


def fill(send: Callable[..., None], recorder: str) -> dict[str, bytes]:
    """Send the test mail through the sendmail under test; subject -> the raw bytes sent."""
    mails: dict[str, bytes] = {}

    def mail(subject: str, raw: bytes, *args: str, split: bool = False) -> None:
        send(raw, *args, split=split)
        mails[subject] = raw

    mail(CRON, f"From: root (Cron Daemon)\nTo: root\nSubject: {CRON}\n\nrun-parts: /etc/cron.daily/logrotate exited "
         "with return code 1\n".encode())
    mail(MDADM, f"From: mdadm monitoring <root@web1>\nTo: ops@example.org\nSubject: {MDADM}\n\nThis is an "
         "automatically generated mail message from mdadm.\nA DegradedArray event had been detected on md device "
         "/dev/md0.\n".encode())
    attachment = base64.encodebytes(bytes(range(256)) * 4).decode()
    mail(BACKUP, ("From: backup@web2\nTo: ops@example.org\nSubject: " + BACKUP + "\nMIME-Version: 1.0\n"
                  'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\n'
                  "All 12 volumes saved.\n--b1\nContent-Type: application/gzip\n"
                  'Content-Disposition: attachment; filename="backup-log.gz"\nContent-Transfer-Encoding: base64\n\n'
                  + attachment + "--b1--\n").encode())
    lines = "".join(f"line {n:05d} of the big report, kept whole across the parts\n" for n in range(400))
    mail(SPLIT, f"From: report@web3\nTo: root\nSubject: {SPLIT}\n\n{lines}".encode(), split=True)
    mail(LATIN, b"From: root\nTo: root\nSubject: " + LATIN.encode() + b"\nContent-Type: text/plain; charset=latin-1\n"
         b"Content-Transfer-Encoding: 8bit\n\ncaf\xe9 cr\xe8me \x00 and a NUL\r\nand CRLF\r\n")
    mail(HOSTILE, f"From: {EVIL_NAME}\nTo: <script>alert(6)</script>@example.org, root\nSubject: {HOSTILE}\n\n"
         f'<script>alert(7)</script> <img src="{recorder}/body.png"> javascript:alert(8)\n'.encode(), "root")
    mail(HTML, (f"From: {EVIL_NAME}\nTo: root\nSubject: {HTML}\nMIME-Version: 1.0\n"
                f"Content-Type: text/html; charset=utf-8\n\n{html_body(recorder)}").encode())
    mail(ALT, (f"From: news@example.org\nTo: root\nSubject: {ALT}\nMIME-Version: 1.0\n"
               'Content-Type: multipart/alternative; boundary="a1"\n\n--a1\nContent-Type: text/plain\n\n'
               "the plain text, see javascript:alert(9)\n--a1\nContent-Type: text/html\n\n"
               f"{html_body(recorder)}--a1--\n").encode())
    return mails
