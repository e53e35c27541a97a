"""The mail the web tests read, hostile mail among it, and a recorder of HTTP requests
(the "remote" server a tracking pixel or a stylesheet in a mail points at)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    """A local http.server that records every connection made to it (a preconnect opens
    one and asks nothing) and every request it gets (none may come); ``page`` is its
    answer to ``/page`` (a control page for the browser)."""

    def __init__(self, page: str = "") -> None:
        self.requests: list[str] = []
        self.connections = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append(self.path)
                body = page.encode() if self.path == "/page" else b""
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if body else "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                recorder.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Recorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
