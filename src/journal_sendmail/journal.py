"""Journal: the native journal protocol, spoken directly.

Why not ``systemd.journal.send``: measured, it returns success and drops the
message when journald is not running, and blocks forever when journald is
stalled.  This sender uses a connected AF_UNIX datagram socket with a
deadline, and hands entries too big for one datagram over in a sealed memfd
(systemd.io, "Native Journal Protocol").  It imports ``_socket`` rather than
``socket``: the latter costs ~7 ms of start-up (enum, selectors).
"""

from __future__ import annotations

import _socket
import errno
import posix
import time

from .errors import JournalError
from .message import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .record import Fields

    Sender = Callable[[bytes], None]


# Past this a datagram is likely refused (net.core.wmem_default); go to memfd.
DATAGRAM_MAX = 200 * 1024


class Journal:
    """A connection to journald's native socket; every send shares a deadline."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.sock: _socket.socket | None = None

    def _connect(self) -> _socket.socket:
        if self.sock is None:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
            try:
                sock.settimeout(self._remaining())
                sock.connect(self.path)
            except OSError as e:
                sock.close()
                raise JournalError(self._reason(e)) from None
            self.sock = sock
        return self.sock

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise JournalError(f"journal {self.path}: timed out after {self.timeout:g} s")
        return left

    def _reason(self, e: OSError) -> str:
        if isinstance(e, TimeoutError):
            return f"journal {self.path}: timed out after {self.timeout:g} s"
        if e.errno == errno.ENOENT:
            return f"journal {self.path}: no such socket (is systemd-journald running?)"
        if e.errno == errno.ECONNREFUSED:
            return f"journal {self.path}: connection refused (systemd-journald is not running)"
        return f"journal {self.path}: {e.strerror or e}"

    def send(self, payload: bytes) -> None:
        """Hand one entry to journald, or raise JournalError."""
        sock = self._connect()
        try:
            sock.settimeout(self._remaining())
            if len(payload) <= DATAGRAM_MAX:
                try:
                    sock.send(payload)
                    return
                except OSError as e:
                    if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                        raise
            self._send_memfd(sock, payload)
        except OSError as e:
            raise JournalError(self._reason(e)) from None

    def _send_memfd(self, sock: _socket.socket, payload: bytes) -> None:
        import fcntl

        fd = posix.memfd_create("journal-sendmail-entry", posix.MFD_CLOEXEC | posix.MFD_ALLOW_SEALING)
        try:
            write_all(fd, payload)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                        | fcntl.F_SEAL_WRITE)
            sock.sendmsg([], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little", signed=True))])
        finally:
            posix.close(fd)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def write_mail(send: Sender, fields: Fields, parts: Iterable[Fields]) -> None:
    """Write the part entries, then the message entry that commits them.

    The message entry goes last: a reader that sees it knows every part is
    already in the journal.
    """
    from .record import encode

    for part in parts:
        send(encode(part))
    send(encode(fields))
