"""State: what each destination and digest has done, under state_dir, surviving SIGKILL.

One directory per consumer (``dest-NAME``, ``digest-NAME``):
``state.json`` (the journal cursor per sending host, retries, rate-limit
window, digest due time), replaced atomically (temp file, rename); and
``delivered``, an append-only list of the mails done (MAIL_ID and sender),
written before the cursor moves, so that a crash between the relay's 250 and
the cursor costs at most that one mail again, and an upload sent twice is
sent on once.  Both are fsync'ed at the end of each batch.

Every file here is opened without following a link (O_NOFOLLOW) and made
0600, whoever runs the forwarder (the service's user, or root by hand), a
replaced one through ``safefile.write_file``.  State's methods change it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import IO, Any

from ...errors import JournalSendmailError
from ..safefile import DIR_FLAGS, write_file

DELIVERED_MEMORY = 50_000  # keys kept; a duplicate upload comes within minutes, not 50,000 mails later
BACKOFF_FIRST = 30.0  # seconds; doubled at each attempt
BACKOFF_MAX = 3600.0


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
    """``path`` opened with ``flags`` (never through a link), 0600 whatever the umask, owned like its directory."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, PRIVATE)
    except OSError as e:
        raise StateError(f"{path}: {e.strerror or e}"
                         + (" (a symbolic link: refused)" if os.path.islink(path) else "")) from None
    try:
        os.fchmod(fd, PRIVATE)
        if o := owner(os.path.dirname(path)):
            os.fchown(fd, *o)
    except OSError as e:
        os.close(fd)
        raise StateError(f"{path}: {e.strerror or e}") from None
    return fd


def nofollow(path: str, flags: int) -> int:
    """An ``opener`` for open(): never through a link."""
    return os.open(path, flags | _NOFOLLOW)


def lines(path: str) -> list[str]:
    """The complete lines of ``path`` (one a crash cut is left out), never through a link; [] if it is missing."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", opener=nofollow) as f:
            return [line[:-1] for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StateError(f"{path}: {e.strerror or e}") from None


@contextmanager
def private_append(path: str) -> Iterator[IO[bytes]]:
    """``path`` opened to append (created 0600), owned like its directory."""
    with os.fdopen(_open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab") as f:
        yield f


def owner(like: str) -> tuple[int, int] | None:
    """Whom root running the forwarder by hand gives what it makes in ``like`` (None: nobody else), so
    that the files the service's (dynamic) user owns stay readable to it."""
    if os.geteuid() != 0:
        return None
    st = os.stat(like)
    return (st.st_uid, st.st_gid) if st.st_uid != 0 or st.st_gid != 0 else None


def replace(directory: str, name: str, data: bytes, durable: bool = True) -> None:
    """The file ``name`` of a consumer's directory replaced by ``data``: 0600, owned like the directory,
    never through a link (``safefile.write_file``); ``durable``: the file and the directory fsync'ed."""
    try:
        fd = os.open(directory, DIR_FLAGS)
    except OSError as e:
        raise StateError(f"{directory}: {e.strerror or e}") from None
    try:
        write_file(fd, name, data, PRIVATE, directory, durable, owner(directory))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


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
    fd = _open_private(os.path.join(state_dir, "lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"another journal-mail forward is using {state_dir}") from None
    return fd


def safe_name(name: str) -> str:
    """A file name for a consumer.

    >>> safe_name("ops"), safe_name("../x y")
    ('ops', '.._x_y')
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("/")


@dataclass(frozen=True)
class Retry:
    """The failed attempts at one mail (or at sending a digest): since when, how many, the next one when."""

    first: float
    attempts: int
    next: float

    @staticmethod
    def after(last: Retry | None, now: float) -> Retry:
        """One more failure at ``now``: the delay doubles from BACKOFF_FIRST, up to BACKOFF_MAX.

        >>> Retry.after(Retry.after(None, 0.0), 40.0)
        Retry(first=0.0, attempts=2, next=100.0)
        """
        first, attempts = (last.first, last.attempts + 1) if last else (now, 1)
        return Retry(first, attempts, now + min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX))


class State:
    """The state of one consumer, changed only through its methods (each marks what it changed to be
    written at the next ``save``, but ``done``, which is on disk at once)."""

    def __init__(self, state_dir: str, kind: str, name: str) -> None:
        self.dir = os.path.join(state_dir, f"{kind}-{safe_name(name)}")
        top = check_dir(state_dir)
        try:
            os.mkdir(self.dir, 0o700)
            if o := owner(state_dir):
                os.chown(self.dir, *o)
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
            pass
        except (OSError, ValueError) as e:
            raise StateError(f"{self.path}: unreadable ({e}); move it away to start this destination afresh") from None
        self.data.setdefault("cursors", {})
        self.data.setdefault("retry", {})
        self._delivered_path = os.path.join(self.dir, "delivered")
        self.delivered = dict.fromkeys(lines(self._delivered_path))
        while len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
        self._log = self._open_log()
        self._lines = len(self.delivered)

    def _open_log(self) -> IO[str]:
        fd = _open_private(self._delivered_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")

    def _set(self, where: dict[str, Any], key: str, value: Any) -> None:
        """``where[key] = value`` (None: removed), marked to be written if it changed anything."""
        if value is not None:
            where[key] = value
        elif where.pop(key, None) is None:
            return
        self.dirty = True

    @property
    def initialized(self) -> bool:
        return bool(self.data.get("initialized"))

    def initialize(self) -> None:
        self._set(self.data, "initialized", True)

    def cursor(self, host: str) -> str | None:
        c = self.data["cursors"].get(host)
        return c if isinstance(c, str) else None

    def set_cursor(self, host: str, cursor: str) -> None:
        self._set(self.data["cursors"], host, cursor)

    def done(self, key: str, sent: float | None = None) -> None:
        """Remember that ``key`` was delivered (before the cursor moves past it); ``sent``: when it was
        sent to a destination with a rate limit (counted in ``recent``)."""
        self._log.write(key + "\n")
        self._log.flush()
        self.unsynced = True
        self._lines += 1
        self.delivered[key] = None
        if len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
        self.data["retry"].pop(key, None)
        if sent is not None:
            self.data["window"] = [*self.data.get("window", []), sent]
        self.dirty = True

    def recent(self, since: float) -> int:
        """How many mails were sent after ``since`` (the rate limit's window; older times forgotten)."""
        self.data["window"] = [t for t in self.data.get("window", []) if t > since]
        return len(self.data["window"])

    def retry(self, key: str | None = None) -> Retry | None:
        """The retry that mail ``key`` (None: the digest being sent) waits for, if any."""
        r = self.data["retry"].get(key) if key is not None else self.data.get("digest_retry")
        return Retry(**r) if r else None

    def set_retry(self, r: Retry | None, key: str | None = None) -> None:
        """``r`` (None: none) for mail ``key`` (None: the digest being sent)."""
        where, k = (self.data["retry"], key) if key is not None else (self.data, "digest_retry")
        self._set(where, k, None if r is None else asdict(r))

    # -- a digest: when it is due, and how far the sending of its closed bucket went -----

    def next_due(self) -> float | None:
        return self.data.get("next_due")

    def set_next_due(self, when: float) -> None:
        self._set(self.data, "next_due", when)

    def sent_groups(self, dest: str) -> frozenset[str]:
        return frozenset(self.data.get("sent_groups", {}).get(dest, []))

    def sent_part(self, dest: str, groups: tuple[str, ...]) -> None:
        self.data.setdefault("sent_groups", {}).setdefault(dest, []).extend(groups)
        self.dirty = True

    def part_limit(self, dest: str, default: int) -> int:
        return int(self.data.get("max_bytes", {}).get(dest, default))

    def set_part_limit(self, dest: str, limit: int) -> None:
        self._set(self.data.setdefault("max_bytes", {}), dest, limit)

    def finished(self, dest: str) -> bool:
        return dest in self.data.get("sent_to", [])

    def finish(self, dest: str) -> None:
        self._set(self.data, "sent_to", [*self.data.get("sent_to", []), dest])

    def digest_sent(self) -> None:
        """The closed bucket went to every destination: its sending starts afresh next time."""
        self.data["sent_to"] = []
        self.data.pop("sent_groups", None)
        self.data.pop("digest_retry", None)
        self.dirty = True

    # -- the alert policies' own records (repeat windows, expectations, …), dicts their pure modules change --

    def record(self, name: str) -> dict[str, Any]:
        """Policy record ``name`` (made empty if missing); ``changed`` after changing it."""
        return self.data.setdefault(name, {})  # type: ignore[no-any-return]

    def changed(self) -> None:
        self.dirty = True

    def save(self, durable: bool = False) -> None:
        """Write state.json atomically if it changed; ``durable``: and fsync what was written since
        the last durable save (nothing at all when nothing changed: an idle service writes nothing)."""
        if durable and not (self.dirty or self.unsynced):
            return
        if durable:
            os.fsync(self._log.fileno())
            if self._lines > 2 * DELIVERED_MEMORY:
                self._compact()
        if self.dirty or durable:  # durable: the directory too, so that the delivered list's entry is on disk
            replace(self.dir, "state.json", json.dumps(self.data, separators=(",", ":")).encode(), durable)
            self.unsynced = not durable
        self.dirty = False

    def _compact(self) -> None:
        replace(self.dir, "delivered", "".join(k + "\n" for k in self.delivered).encode("utf-8", "surrogateescape"))
        self._log.close()
        self._log = self._open_log()
        self._lines = len(self.delivered)

    def close(self) -> None:
        self.save(durable=True)
        self._log.close()
