"""Output: where journal-mail writes: standard output, a pager, files, a
directory of eml files, and the cursor file of ``follow``."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ..errors import UsageError
from ..message import write_all
from . import render, safefile
from .errors import NotFound, OutputError

PROG = "journal-mail"


FLUSH_BYTES = 256 * 1024


@dataclass
class Io:
    """Where the program's output goes, and what it knows of its terminal."""

    out: IO[bytes]
    err: IO[bytes]
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def tty(self) -> bool:
        try:
            return self.out.isatty()
        except (ValueError, OSError):
            return False

    def color(self) -> bool:
        return self.tty() and "NO_COLOR" not in self.environ and self.environ.get("TERM", "") not in ("", "dumb")

    def width(self) -> int | None:
        if not self.tty():
            return None
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (OSError, ValueError):
            return int(self.environ.get("COLUMNS", "80"))

    def say(self, line: str) -> None:
        """One line on stderr; what it quotes from a mail cannot move the terminal's cursor."""
        try:
            self.err.write(f"{PROG}: {render.printable(line, one_line=True)}\n".encode("utf-8", "replace"))
            self.err.flush()
        except (OSError, ValueError):
            pass


class Output:
    """Bytes to stdout, a file (appended, reopened on demand) or nowhere yet.

    Buffered: ``write`` collects, ``flush`` writes everything out.
    """

    def __init__(self, stream: IO[bytes] | None, path: str | None, append: bool = True) -> None:
        self.stream = stream
        self.path = path
        self.append = append
        self.fd: int | None = None
        self.buf = bytearray()
        if path is not None:
            self.reopen()

    def reopen(self) -> None:
        assert self.path is not None
        self.flush()
        fd = safefile.open_output(self.path, self.append)  # never through a link, nor into another's directory
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd
        self.append = True  # a reopened file is appended to, never truncated

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            if self.stream is not None:
                self.stream.flush()
            return
        data, self.buf = bytes(self.buf), bytearray()
        if self.fd is not None:
            try:
                write_all(self.fd, data)
            except OSError as e:
                raise OutputError(f"cannot write {self.path}: {e.strerror}") from None
        elif self.stream is not None:
            self.stream.write(data)
            self.stream.flush()

    def close(self) -> None:
        self.flush()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class Signals:
    """What SIGTERM or SIGINT (``stop``) and SIGHUP (``hup``) asked of a command that
    runs until stopped; its loop looks at them between steps."""

    stop: bool = False
    hup: bool = False

    @classmethod
    def install(cls, hup: bool = True, on_stop: Callable[[], None] | None = None) -> Signals:
        """The handlers, installed; ``on_stop``: called too when stopped (in the handler)."""
        flags = cls()

        def stop(signum: int, frame: object) -> None:
            flags.stop = True
            if on_stop is not None:
                on_stop()

        def on_hup(signum: int, frame: object) -> None:
            flags.hup = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hup:
            signal.signal(signal.SIGHUP, on_hup)
        return flags


def write_eml(directory: int, name: str, raw: bytes, path: str = "") -> None:
    """One file per mail in the directory open as ``directory``: written under a fresh
    temporary name (O_EXCL|O_NOFOLLOW) and renamed into place."""
    safefile.write_file(directory, name, raw, 0o600, path)


def eml_directory(path: str | None) -> int:
    """The ``--format eml`` directory, open; made (0700) when missing; refused when
    it, or a directory on the way, is a link or someone else's."""
    if path is None:
        raise UsageError("--format eml writes one file per mail: give the directory with --output DIR")
    return safefile.open_dir(path, create=True, mode=0o700, parents_mode=0o700)


def read_cursor(path: str) -> str | None:
    try:
        data = safefile.read_small(path)
    except safefile.UnsafePath:
        raise
    except OutputError as e:
        raise NotFound(f"cannot read the cursor file: {e.reason}") from None
    if data is None:
        return None
    try:
        return data.decode("ascii").strip() or None
    except UnicodeDecodeError as e:
        raise NotFound(f"cannot read the cursor file {path}: {e}") from None


def save_cursor(path: str, cursor: str) -> None:
    """Atomically: a crash leaves the old cursor or the new one, never half of one."""
    try:
        safefile.replace_file(path, (cursor + "\n").encode("ascii"), 0o600)
    except safefile.UnsafePath:
        raise
    except OutputError as e:
        raise OutputError(f"cannot save the cursor: {e.reason}") from None


def page(text: bytes, io: Io, no_pager: bool) -> None:
    """Through a pager like journalctl's (``$SYSTEMD_PAGER``, ``$PAGER``, less) on a TTY."""
    pager = io.environ.get("SYSTEMD_PAGER", io.environ.get("PAGER", "less"))
    if no_pager or not io.tty() or pager.strip() in ("", "cat") or text.count(b"\n") < 2:
        io.out.write(text)
        io.out.flush()
        return
    import subprocess

    env = dict(io.environ)
    env.setdefault("LESS", "FRSXMK")
    env.setdefault("LESSCHARSET", "utf-8")
    try:
        proc = subprocess.Popen(["sh", "-c", pager], stdin=subprocess.PIPE, stdout=io.out, env=env)
    except OSError:
        io.out.write(text)
        return
    assert proc.stdin is not None
    try:
        proc.stdin.write(text)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early
    proc.wait()
