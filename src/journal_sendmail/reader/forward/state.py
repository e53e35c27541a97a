"""State: what each destination and digest has done, under state_dir, surviving SIGKILL.

One directory per consumer (``dest-NAME``, ``digest-NAME``):
``state.json`` (the journal cursor per sending host, retries, rate-limit
window, digest due time), replaced atomically (temp file, rename); and
``delivered``, an append-only list of the mails done (MAIL_ID and sender),
written before the cursor moves, so that a crash between the relay's 250 and
the cursor costs at most that one mail again, and an upload sent twice is
sent on once.  Both are fsync'ed at the end of each batch.

Every file here is opened without following a link (O_NOFOLLOW) and made
0600, whoever runs the forwarder (the service's user, or root by hand).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from ...errors import JournalSendmailError

DELIVERED_MEMORY = 50_000  # keys kept; a duplicate upload comes within minutes, not 50,000 mails later


class StateError(JournalSendmailError):
    """The state directory cannot be used."""

    code = 73  # EX_CANTCREAT
    tag = "state"


class Busy(JournalSendmailError):
    """Another forwarder holds the state directory."""

    code = 75
    tag = "busy"


PRIVATE = 0o600
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _open_private(path: str, flags: int) -> int:
    """``path`` opened with ``flags`` (never through a link), mode 0600 whatever the umask."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, PRIVATE)
    except OSError as e:
        raise StateError(f"{path}: {e.strerror or e}"
                         + (" (a symbolic link: refused)" if os.path.islink(path) else "")) from None
    try:
        os.fchmod(fd, PRIVATE)
    except OSError:
        os.close(fd)
        raise
    return fd


def nofollow(path: str, flags: int) -> int:
    """An ``opener`` for open(): never through a link."""
    return os.open(path, flags | _NOFOLLOW)


@contextmanager
def private_append(path: str) -> Iterator[IO[bytes]]:
    """``path`` opened to append (created 0600), owned like its directory."""
    fd = _open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "ab") as f:
        own_fd(f.fileno(), os.path.dirname(path))
        yield f


def write_private(path: str, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` atomically by ``data``: a fresh 0600 temporary file (O_EXCL), then a rename."""
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)  # left by a crash (or planted: a link is removed, never followed)
    except FileNotFoundError:
        pass
    fd = _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
        own_fd(f.fileno(), os.path.dirname(path))
    os.replace(tmp, path)


def own_fd(fd: int, like: str) -> None:
    """``own`` for an open file."""
    if os.geteuid() != 0:
        return
    st = os.stat(like)
    if st.st_uid != 0 or st.st_gid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def check_dir(state_dir: str) -> os.stat_result:
    """``state_dir`` must be a directory no other user could have made nor can change: not writable
    by group or others, owned by us or root, or (root running it by hand) by whoever root gave it
    to in a directory of root's (the service's DynamicUser= through StateDirectory=, which makes
    it a link into root's /var/lib/private: that link is followed).  StateError (exit 73) if not."""
    try:
        st = os.stat(state_dir)
        parent = os.stat(os.path.dirname(os.path.realpath(state_dir)))
    except OSError as e:
        raise StateError(f"state directory {state_dir}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {state_dir}: not a directory")
    if st.st_mode & 0o022:
        raise StateError(f"state directory {state_dir}: writable by group or others (chmod 700 it)")
    me = os.geteuid()
    if st.st_uid not in (me, 0) and (me != 0 or parent.st_uid != 0 or parent.st_mode & 0o022):
        raise StateError(f"state directory {state_dir}: owned by uid {st.st_uid}, in a directory that is "
                         "not root's alone (another user may have made it): refused")
    return st


def check_subdir(path: str, top: os.stat_result) -> None:
    """A consumer's directory: a real directory (never a link), owned like state_dir or by us, private."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise StateError(f"{path}: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{path}: not a directory (a symbolic link or another file): refused")
    if st.st_mode & 0o022 or st.st_uid not in (os.geteuid(), top.st_uid):
        raise StateError(f"{path}: writable by group or others, or owned by another user: refused")


def lock(state_dir: str) -> int:
    """Hold state_dir for this process (released by the kernel, even on SIGKILL)."""
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        raise StateError(f"state directory {state_dir}: {e.strerror or e}") from None
    check_dir(state_dir)
    try:
        fd = _open_private(os.path.join(state_dir, "lock"), os.O_RDWR | os.O_CREAT)
        own_fd(fd, state_dir)
    except OSError as e:
        raise StateError(f"state directory {state_dir}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"another journal-mail forward is using {state_dir}") from None
    return fd


def own(path: str, like: str) -> None:
    """Root running the forwarder by hand keeps the files the service's (dynamic) user owns its own.

    Without this, a state file replaced by a root run would be unreadable to
    the unprivileged service afterwards.
    """
    if os.geteuid() != 0:
        return
    st = os.stat(like)
    if st.st_uid != 0 or st.st_gid != 0:
        os.chown(path, st.st_uid, st.st_gid)


def safe_name(name: str) -> str:
    """A file name for a consumer.

    >>> safe_name("ops"), safe_name("../x y")
    ('ops', '.._x_y')
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("/")


class State:
    """The state of one consumer."""

    def __init__(self, state_dir: str, kind: str, name: str) -> None:
        self.dir = os.path.join(state_dir, f"{kind}-{safe_name(name)}")
        top = check_dir(state_dir)
        try:
            os.mkdir(self.dir, 0o700)
            own(self.dir, state_dir)
        except FileExistsError:
            pass
        except OSError as e:
            raise StateError(f"{self.dir}: {e.strerror or e}") from None
        check_subdir(self.dir, top)
        self.path = os.path.join(self.dir, "state.json")
        self.data: dict[str, Any] = {}
        self.dirty = False  # data changed since state.json was last written
        self.unsynced = False  # written (state.json or the delivered list) since the last fsync
        try:
            with open(self.path, encoding="utf-8", opener=nofollow) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError) as e:
            raise StateError(f"{self.path}: unreadable ({e}); move it away to start this destination afresh") from None
        self.data.setdefault("cursors", {})
        self.data.setdefault("retry", {})
        self.delivered: dict[str, None] = {}
        self._delivered_path = os.path.join(self.dir, "delivered")
        try:
            with open(self._delivered_path, encoding="utf-8", errors="surrogateescape", opener=nofollow) as f:
                for line in f:
                    if line.endswith("\n"):
                        self.delivered[line[:-1]] = None
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StateError(f"{self._delivered_path}: {e.strerror or e}") from None
        while len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
        self._log = self._open_log()
        self._lines = len(self.delivered)

    def _open_log(self) -> IO[str]:
        fd = _open_private(self._delivered_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        own_fd(fd, self.dir)
        return os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")

    @property
    def initialized(self) -> bool:
        return bool(self.data.get("initialized"))

    def cursor(self, host: str) -> str | None:
        c = self.data["cursors"].get(host)
        return c if isinstance(c, str) else None

    def set_cursor(self, host: str, cursor: str) -> None:
        self.data["cursors"][host] = cursor
        self.dirty = True

    def done(self, key: str) -> None:
        """Remember that ``key`` was delivered (before the cursor moves past it)."""
        self._log.write(key + "\n")
        self._log.flush()
        self.unsynced = True
        self._lines += 1
        self.delivered[key] = None
        if len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
        self.data["retry"].pop(key, None)

    def save(self, durable: bool = False) -> None:
        """Write state.json atomically if it changed; ``durable``: and fsync what was written since
        the last durable save (nothing at all when nothing changed: an idle service writes nothing)."""
        if durable and not (self.dirty or self.unsynced):
            return
        if durable:
            os.fsync(self._log.fileno())
            if self._lines > 2 * DELIVERED_MEMORY:
                self._compact()
        if self.dirty or durable:
            write_private(self.path, json.dumps(self.data, separators=(",", ":")).encode(), durable)
            self.unsynced = not durable
        if durable:
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self.unsynced = False
        self.dirty = False

    def _compact(self) -> None:
        write_private(self._delivered_path, "".join(k + "\n" for k in self.delivered).encode(
            "utf-8", "surrogateescape"))
        self._log.close()
        self._log = self._open_log()
        self._lines = len(self.delivered)

    def close(self) -> None:
        self.save(durable=True)
        self._log.close()
