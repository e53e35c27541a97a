"""Message: standard input read as bytes, streaming, with sendmail's dot rule.

The body is never decoded.  A message up to ``part_size`` stays in memory;
a bigger one is staged in an anonymous memory file (memfd) as it is read, so
the process's own memory does not grow with the message, and the whole
message is still there for the spool if the journal fails half way.
"""

import posix
import sys

from .dataclass_lite import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Reader = Callable[[int], bytes]


# The C module directly: hashlib's start-up (OpenSSL) costs ~2.5-3.5 ms.
# Python 3.12 renamed it _sha2 (trixie, forky); the name of this Python is
# tried first: a failed import searches all of sys.path (~50 us).
try:
    if sys.version_info >= (3, 12):
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
    else:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha256

READ_SIZE = 256 * 1024


@record
class Raw:
    """The message bytes as received, and what followed a lone dot line."""

    head: bytes  # the first min(size, part_size) bytes
    size: int  # bytes stored (at most max_size)
    sha256: str  # hex digest of the stored bytes
    fd: int | None = None  # memfd with all stored bytes, when size > len(head)
    received: int = 0  # bytes received before the dot line (> size when truncated)
    after_dot: bytes = b""  # what followed a lone "." line (at most part_size bytes)
    after_dot_size: int = 0  # how much followed it in all
    base: int = 0  # where the message starts in ``fd`` (a spool file has a header)

    @property
    def truncated(self) -> bool:
        return self.received > self.size

    def chunks(self, part_size: int) -> "Iterator[bytes]":
        """The stored bytes, ``part_size`` at a time (one empty chunk for 0 B)."""
        if self.fd is None or self.size <= len(self.head):
            yield self.head
            return
        for offset in range(0, self.size, part_size):
            yield posix.pread(self.fd, min(part_size, self.size - offset), self.base + offset)

    def read_all(self) -> bytes:
        """Every stored byte: only for messages known to be small."""
        return b"".join(self.chunks(max(self.size, 1)))

    def close(self) -> None:
        if self.fd is not None:
            posix.close(self.fd)
            self.fd = None


def find_dot_line(data: bytes, bol: bool) -> tuple[int, int] | int | None:
    """Where a line that is only ``.`` starts and ends in ``data``.

    ``bol`` says whether ``data`` starts at the beginning of a line.  Returns
    ``(start, end)`` for a complete dot line, an ``int`` offset from which the
    data may be the start of one (hold it back until more arrives), or None.

    >>> find_dot_line(b"a\\n.\\nb", True)
    (2, 4)
    >>> find_dot_line(b".\\r\\n", True), find_dot_line(b".\\r\\n", False)
    ((0, 3), None)
    >>> find_dot_line(b"a\\n.", True), find_dot_line(b"a\\n..\\n", True)
    (2, None)
    """
    starts: list[int] = [0] if bol and data.startswith(b".") else []
    k = -1
    while True:
        if not starts:
            k = data.find(b"\n.", k + 1)
            if k < 0:
                return None
            starts.append(k + 1)
        c = starts.pop()
        tail = data[c + 1:c + 3]
        if tail[:1] == b"\n":
            return (c, c + 2)
        if tail == b"\r\n":
            return (c, c + 3)
        if tail in (b"", b"\r"):
            return c


def read(
    read_fn: "Reader",
    *,
    ignore_dots: bool,
    part_size: int,
    max_size: int,
    read_after_dot: bool = True,
) -> "Raw":
    """Read a whole message with ``read_fn`` (like os.read) into a Raw."""
    digest = sha256()
    head = bytearray()
    fd: int | None = None
    size = 0
    received = 0

    def keep(data: bytes) -> None:
        nonlocal fd, size, received
        received += len(data)
        data = data[: max(0, max_size - size)]
        if not data:
            return
        digest.update(data)
        size += len(data)
        room = part_size - len(head)
        if room > 0:
            head.extend(data[:room])
        if fd is None and size > part_size:
            fd = posix.memfd_create("journal-sendmail", posix.MFD_CLOEXEC)
            write_all(fd, bytes(head))
            data = data[room:] if room > 0 else data
        elif fd is None:
            return
        write_all(fd, data)

    pending = b""
    bol = True
    after: bytes | None = None
    while True:
        chunk = read_fn(READ_SIZE)
        if not chunk:
            break
        if ignore_dots:
            keep(chunk)
            continue
        data = pending + chunk
        found = find_dot_line(data, bol)
        if isinstance(found, tuple):
            keep(data[: found[0]])
            after = data[found[1]:]
            break
        pending = data[found:] if found is not None else b""
        done = data[: found] if found is not None else data
        if done:
            keep(done)
            bol = done.endswith(b"\n")
    if after is None and pending and not ignore_dots:
        # EOF on "." or ".\r" at the start of a line: that dot ends the message.
        after = b""
    after_buf = bytearray(after or b"")
    after_size = len(after_buf)
    if after is not None and read_after_dot:
        while True:
            chunk = read_fn(READ_SIZE)
            if not chunk:
                break
            after_size += len(chunk)
            if len(after_buf) < part_size:
                after_buf.extend(chunk[: part_size - len(after_buf)])
    return Raw(
        head=bytes(head),
        size=size,
        sha256=digest.hexdigest(),
        fd=fd,
        received=received,
        after_dot=bytes(after_buf[:part_size]),
        after_dot_size=after_size,
    )


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view):]


def from_fd(fd: int, base: int, size: int, part_size: int) -> "Raw":
    """A Raw for ``size`` bytes at ``base`` of an open file (a spool file).

    The file is read once, a chunk at a time, for the digest; ``fd`` is
    duplicated, so the caller keeps (and closes) its own.
    """
    digest = sha256()
    for offset in range(0, size, READ_SIZE):
        digest.update(posix.pread(fd, min(READ_SIZE, size - offset), base + offset))
    head = posix.pread(fd, min(size, part_size), base)
    return Raw(head=head, size=size, sha256=digest.hexdigest(), fd=posix.dup(fd), received=size, base=base)


def from_bytes(data: bytes | bytearray, part_size: int, max_size: int | None = None) -> "Raw":
    """A Raw for bytes already in memory (an SMTP DATA block), at most ``max_size`` of them."""
    view = memoryview(data)
    pos = 0

    def read_fn(n: int) -> bytes:
        nonlocal pos
        out = bytes(view[pos : pos + n])
        pos += len(out)
        return out

    return read(read_fn, ignore_dots=True, part_size=part_size, max_size=len(data) if max_size is None else max_size)
