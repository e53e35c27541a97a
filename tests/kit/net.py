"""Loopback network helpers: a free port, a test CA, and one HTTP recorder (a mail's
"remote" server for the browser, a webhook for the forwarder)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, *names: str, ca: str = "ca") -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """A test CA in ``d`` (CA.pem, CA.key) and, for each of ``names``, a certificate it
    signed (NAME.pem, NAME.key; subjectAltName DNS:NAME, and IP:127.0.0.1 for localhost).
    Returns the CA's certificate and {name: (certificate, key)}.  keyUsage on the CA and
    key identifiers on the certificates: Python 3.13 verifies strictly (VERIFY_X509_STRICT)."""
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN=journal test {ca}",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    certs: dict[str, tuple[Path, Path]] = {}
    for h in names:
        san = f"DNS:{h},IP:127.0.0.1" if h == "localhost" else f"DNS:{h}"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={h}", "-keyout", f"{h}.key",
                "-out", f"{h}.csr", cwd=d)
        (d / f"{h}.ext").write_text(f"subjectAltName={san}\nauthorityKeyIdentifier=keyid,issuer\n"
                                   "subjectKeyIdentifier=hash\n")
        openssl("x509", "-req", "-in", f"{h}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-days", "30", "-extfile", f"{h}.ext", "-out", f"{h}.pem", cwd=d)
        certs[h] = (d / f"{h}.pem", d / f"{h}.key")
    return d / f"{ca}.pem", certs


class Recorder:
    """http.server on 127.0.0.1 (HTTPS with ``tls``) that records every connection made
    to it (a preconnect opens one and asks nothing) and every request: ``requests`` the
    GET paths; ``posts`` (headers, body) and ``paths`` of the POSTs it took.  A GET of
    ``/page`` gets ``page`` (a control page for the browser), any other an empty image; a
    POST gets ``status`` (431 for a header longer than ``max_header``, as ntfy does)."""

    def __init__(self, page: str = "", tls: ssl.SSLContext | None = None, max_header: int | None = None) -> None:
        self.requests: list[str] = []
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.connections = 0
        self.status = 200
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

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                too_long = max_header is not None and any(len(v) > max_header for v in self.headers.values())
                status = 431 if too_long else recorder.status
                if status == 200:
                    recorder.posts.append((dict(self.headers.items()), body))
                    recorder.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                recorder.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = int(self.server.server_address[1])
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.base

    def records(self) -> list[dict[str, Any]]:
        """The bodies of the POSTs taken, as JSON."""
        return [json.loads(b) for _, b in self.posts]

    def start(self) -> Recorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
