"""Journal: the native journal protocol, spoken directly.

Why not ``systemd.journal.send``: measured, it returns success and drops the
message when journald is not running, and blocks forever when journald is
stalled.  This sender uses a connected AF_UNIX datagram socket with a
deadline, and hands entries too big for one datagram over in a sealed memfd
(systemd.io, "Native Journal Protocol").  It imports ``_socket`` rather than
``socket``: the latter costs ~7 ms of start-up (enum, selectors).
"""

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
# SIOCOUTQ (= TIOCOUTQ): bytes of ours the receiver has not taken yet.  The
# generic value; the few architectures that differ ask termios (~0.2 ms).
_GENERIC_TIOCOUTQ = ("x86_64", "i686", "i586", "i386", "aarch64", "armv7l", "armv6l", "armv8l", "riscv64",
                     "s390x", "loongarch64", "ia64")


def _siocoutq() -> int:
    if posix.uname().machine in _GENERIC_TIOCOUTQ:
        return 0x5411
    import termios

    return termios.TIOCOUTQ


def _instance(path: str) -> int | None:
    """Which journald serves ``path``: the inode of the varlink socket it
    binds anew next to it at every start (None when there is none).  The
    native socket itself is systemd's and outlives journald's restarts."""
    try:
        return posix.stat(path.rpartition("/")[0] + "/io.systemd.journal").st_ino
    except OSError:
        return None


def _mail_id(payload: bytes) -> bytes:
    """The MAIL_ID value of an encoded entry (b"" when it has none).  Record
    writes it among the first fields, so only the head is searched.

    >>> from .record import encode
    >>> _mail_id(encode([("MESSAGE", b"m"), ("MAIL_ID", b"abc"), ("MAIL_RAW", b"x")]))
    b'abc'
    >>> _mail_id(encode([("MAIL_ID", b"first")])), _mail_id(encode([("MESSAGE", b"m")]))
    (b'first', b'')
    """
    head = payload[:8192]
    at = head.find(b"\nMAIL_ID\n")
    start = at + 9 if at >= 0 else (8 if head.startswith(b"MAIL_ID\n") else -1)
    if start < 0:
        return b""
    size = int.from_bytes(head[start:start + 8], "little")
    return head[start + 8:start + 8 + size]


class Journal:
    """A connection to journald's native socket; every send shares a deadline."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.sock: _socket.socket | None = None
        self.unconfirmed = False  # an entry was sent that journald may not have handled yet
        self.instance = _instance(path)
        self.sent: dict[bytes, int] = {}  # entries sent, by MAIL_ID

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
                    self._sent(payload)
                    return
                except OSError as e:
                    if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                        raise
            self._send_memfd(sock, payload)
            self._sent(payload)
        except OSError as e:
            self.unconfirmed = False  # this one goes to the spool; no use waiting
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

    def _sent(self, payload: bytes) -> None:
        self.unconfirmed = True
        key = _mail_id(payload)
        self.sent[key] = self.sent.get(key, 0) + 1

    def confirm(self) -> None:
        """Wait until journald has handled what was sent (see wait_handled);
        raise JournalError when it may have lost it.

        A journald killed (SIGKILL, a watchdog abort) after it took an entry
        and before it wrote it loses that entry, and the sender cannot see it
        on the socket: the next journald takes the empty datagram as usual.
        So when another journald answered than the one that was there at
        the start, the journal itself is asked (rare, ~20 ms): every entry of
        this process must be there, or the caller spools the mail.
        """
        if not self.wait_handled() or self.instance is None or _instance(self.path) == self.instance:
            return
        missing = _missing(self.path, self.sent)
        if missing:
            raise JournalError(f"journal {self.path}: journald restarted while it handled the mail, "
                               f"and {missing} of its entries are not in the journal")

    def wait_handled(self) -> bool:
        """Wait, until the deadline at most, until journald has handled every
        entry sent; True when it has, False when the deadline came first.

        journald reads the sender's unit, executable and command line
        (``_SYSTEMD_UNIT``, ``_EXE``, ``_CMDLINE``) from /proc/<pid> while it
        handles the entry: a sender that has already exited gets none of
        them.  journald takes one datagram at a time, in order, so an empty
        datagram (no entry) sent after ours is taken only once ours is
        handled, and SIOCOUTQ, what journald has not yet taken of this
        socket, is 0 from then on.  A stopped journald costs the deadline,
        never a hang; the entries stay queued for it, as before.
        """
        sock = self.sock
        if sock is None or not self.unconfirmed:
            return True
        import fcntl

        request = _siocoutq()
        sock.setblocking(False)  # a full queue must not block the empty datagram
        marked = False
        # journald usually handles an entry within a fraction of a millisecond:
        # yield the CPU to it for the first 2 ms (a sleep would overshoot by
        # more than the whole wait), then poll with growing sleeps.
        spin_until = time.monotonic() + 0.002
        pause = 0.0002
        while True:
            try:
                if not marked:
                    sock.send(b"")
                    marked = True
                if fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0") == b"\0\0\0\0":
                    self.unconfirmed = False
                    return True
            except BlockingIOError:
                pass  # the queue is full: try the empty datagram again
            except OSError:
                return False  # journald went away: nothing more to learn
            now = time.monotonic()
            if now < spin_until:
                posix.sched_yield()
                continue
            left = self.deadline - now
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.005)

    def close(self) -> None:
        """Close the socket once journald has handled what was sent (or the
        deadline passed): see wait_handled."""
        if self.sock is not None:
            self.wait_handled()
            self.sock.close()
            self.sock = None


def _missing(path: str, sent: dict[bytes, int]) -> int:
    """How many of the mail entries ``sent`` (counted by MAIL_ID) the
    journal behind ``path`` lacks; all of them when it cannot be read.
    Matched by MAIL_ID alone: an entry that came without credentials has
    no _PID, and an earlier copy of the same mail (re-injected from the
    spool) is as good."""
    wanted = {key: n for key, n in sent.items() if key}  # entries without MAIL_ID are no mail
    if not wanted:
        return 0
    try:
        from systemd import journal  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return sum(wanted.values())
    directory = path.rpartition("/")[0]
    name = directory.rpartition("/")[2]
    namespace = name.partition(".")[2] if name.startswith("journal.") else None
    missing = 0
    try:
        reader = journal.Reader(namespace=namespace) if namespace else journal.Reader()
        try:
            reader.data_threshold = 64  # MAIL_ID=<32 hex> is all that is read
            for key, n in wanted.items():
                reader.flush_matches()
                reader.add_match(MAIL_ID=key.decode("ascii", "replace"))
                found = sum(1 for _ in reader)
                missing += max(0, n - found)
                reader.seek_head()
        finally:
            reader.close()
    except OSError:
        return sum(wanted.values())
    return missing


def write_mail(send: "Sender", fields: "Fields", parts: "Iterable[Fields]") -> None:
    """Write the part entries, then the message entry that commits them.

    The message entry goes last: a reader that sees it knows every part is
    already in the journal.
    """
    from .record import encode

    for part in parts:
        send(encode(part))
    send(encode(fields))
