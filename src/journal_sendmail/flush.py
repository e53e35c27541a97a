"""Flush: re-inject the spool into the journal (``-q``, run by
journal-sendmail-flush.service), quarantine what it will not read, and list
the spool (``mailq``).

cli -> flush -> deliver -> spool: the flusher reads a spool file with
``spool.load`` and stores it with ``deliver.store``, as if just submitted.
"""

from __future__ import annotations

import os
import time

from . import spool
from .config import Config
from .errors import EX_OK, EX_TEMPFAIL, JournalError
from .spool import Refused

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Out = Callable[[str], None]

QUARANTINE = ".quarantine"


def _names(cfg: Config) -> list[str]:
    return sorted(n for n in os.listdir(cfg.spool) if not n.startswith("."))


class Quarantine:
    """``.quarantine/`` in the spool: a directory of root's, mode 0700.

    Anyone may create entries in the 1733 spool, ``.quarantine`` too: a user's
    directory or a symlink there must never receive root's renames.  So the
    directory is opened without following links, its owner and mode are
    checked on the open descriptor, an impostor is moved aside, and files are
    moved with directory descriptors, name by name.
    """

    def __init__(self, spool: str) -> None:
        self.spool = spool
        self.spool_fd: int | None = None
        self.fd: int | None = None

    def _open(self) -> int:
        if self.fd is not None:
            return self.fd
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        self.spool_fd = os.open(self.spool, flags)
        for _ in range(2):
            try:
                os.mkdir(QUARANTINE, 0o700, dir_fd=self.spool_fd)
            except FileExistsError:
                pass
            try:
                fd = os.open(QUARANTINE, flags, dir_fd=self.spool_fd)
            except OSError:  # a symlink (ELOOP) or not a directory
                fd = -1
            if fd >= 0:
                st = os.fstat(fd)
                if st.st_uid == 0 and st.st_mode & 0o077 == 0:
                    self.fd = fd
                    return fd
                os.close(fd)
            # someone else's: move it aside, where the flusher never looks
            os.rename(QUARANTINE, f".impostor-{os.urandom(6).hex()}", src_dir_fd=self.spool_fd,
                      dst_dir_fd=self.spool_fd)
        raise PermissionError(f"{self.spool}/{QUARANTINE} keeps being replaced")

    def move(self, name: str) -> str:
        """Move spool entry ``name`` into the quarantine; its new path."""
        qfd = self._open()
        os.rename(name, name, src_dir_fd=self.spool_fd, dst_dir_fd=qfd)
        return os.path.join(self.spool, QUARANTINE, name)

    def close(self) -> None:
        for fd in (self.fd, self.spool_fd):
            if fd is not None:
                os.close(fd)
        self.fd = self.spool_fd = None


def _event(cfg: Config, name: str, message: str, owner: int | None, reason: str, priority: int = 4) -> None:
    """Log a spool event (id 963c70d7…) to the journal; best effort."""
    from .journal import Journal
    from .record import encode, spool_event_fields

    fields = spool_event_fields(cfg.identifier, cfg.facility, message, name, reason, owner, priority)
    sink = Journal(cfg.socket, cfg.timeout)
    try:
        sink.send(encode(fields))
    except JournalError:
        pass
    finally:
        sink.close()


def flush(cfg: Config, out: Out) -> int:
    """Re-inject every spooled message (as root) or the caller's own ones."""
    try:
        names = _names(cfg)
    except FileNotFoundError:
        return EX_OK
    except PermissionError:
        out(f"journal-sendmail: cannot list the spool {cfg.spool}: only root can "
            "(journal-sendmail-flush.service flushes it)")
        return EX_OK
    counts = {"done": 0, "refused": 0, "kept": 0, "skipped": 0}
    quarantine = Quarantine(cfg.spool)
    try:
        for n, name in enumerate(names):
            try:
                counts[_flush_one(cfg, name, quarantine, out)] += 1
            except JournalError as e:
                out(f"journal-sendmail: {e.reason}; {len(names) - n} message(s) stay in the spool")
                return EX_TEMPFAIL
    finally:
        quarantine.close()
    if counts["done"] or counts["refused"]:
        out(f"journal-sendmail: re-injected {counts['done']} message(s) from the spool, refused {counts['refused']}")
    if counts["kept"]:
        out(f"journal-sendmail: {counts['kept']} refused spool file(s) could not be moved to {QUARANTINE}")
        return EX_TEMPFAIL  # the flush service then waits before it tries again
    return EX_OK


def _flush_one(cfg: Config, name: str, quarantine: Quarantine, out: Out) -> str:
    """Re-inject, refuse or skip one spool entry: "done", "refused", "kept" or "skipped"."""
    import fcntl

    from .deliver import store
    from .submission import resolve

    me = os.geteuid()
    try:
        fd, st = spool.open_checked(cfg, name)
    except (FileNotFoundError, PermissionError):
        return "skipped"  # another flusher took it, or someone else's file and we are not root
    except Refused as why:
        if me != 0:
            return "skipped"
        return _refuse(cfg, name, str(why), quarantine, out)
    try:
        if me != 0 and st.st_uid != me:
            return "skipped"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "skipped"  # another flusher has it
        if os.fstat(fd).st_nlink == 0:
            return "skipped"  # re-injected and removed while we waited for it
        try:
            sub = spool.load(fd, st, cfg.part_size)
        except Exception as e:  # anything a forged file can make the parsers raise (RecursionError too)
            if me != 0:
                out(f"journal-sendmail: spool file {name} is malformed: {e}")
                return "skipped"
            return _refuse(cfg, name, f"malformed: {e}", quarantine, out)
        try:
            store(sub, resolve(sub), cfg)  # JournalError: the file stays for the next flush
        finally:
            sub.raw.close()
        path = os.path.join(cfg.spool, name)
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):  # not replaced meanwhile
            os.unlink(path)
        return "done"
    finally:
        os.close(fd)


def _refuse(cfg: Config, name: str, why: str, quarantine: Quarantine, out: Out) -> str:
    """Report a refused entry (id 963c70d7…) and move it to the quarantine."""
    try:
        owner: int | None = os.lstat(os.path.join(cfg.spool, name)).st_uid
    except OSError:
        owner = None
    try:
        where, result = quarantine.move(name), "refused"
    except OSError as e:
        where, result = f"nowhere ({e.strerror or e}): left in place", "kept"
    _event(cfg, name, f"spool file {name} refused: {why}; moved to {where}", owner, why)
    out(f"journal-sendmail: spool file {name} refused: {why}")
    return result


def _queue_rows(name: str, size: int, mtime: float, meta: dict[str, Any]) -> list[str]:
    """mailq's lines for one spool file; its metadata is the sender's word, so
    anything of the wrong type is shown as unknown, never an error."""
    submitted = meta.get("submitted_at")
    when = submitted if isinstance(submitted, (int, float)) and 0 <= submitted < 1e11 else mtime
    env = meta.get("envelope")
    env = env if isinstance(env, dict) else {}
    sender = env.get("from")
    rcpts = env.get("rcpts")
    rows = [f"{name[:20]:<20} {size:>8} {time.strftime('%a %b %d %H:%M:%S', time.localtime(when))}  "
            f"{sender if isinstance(sender, str) else '?'}"]
    reason = meta.get("reason")
    if isinstance(reason, str) and reason:
        rows.append(f"{'':<30}({reason[:70]})")
    for rcpt in rcpts if isinstance(rcpts, list) else []:
        rows.append(f"{'':<40} {rcpt}")
    return [*rows, ""]


def list_queue(cfg: Config, out: Out) -> int:
    """mailq: the spooled messages like Postfix's mailq, or "Mail queue is empty"."""
    try:
        names = _names(cfg)
    except FileNotFoundError:
        names = []
    except PermissionError:
        out(f"Mail queue is not readable by uid {os.geteuid()}: only root can list {cfg.spool}")
        return EX_OK
    rows: list[str] = []
    total = 0
    for name in names:
        try:
            fd, st = spool.open_checked(cfg, name)
        except (Refused, OSError):
            rows.append(f"{name[:20]:<20} {'?':>8} {'(refused by the flusher)':<20}")
            continue
        try:
            meta, offset = spool.read_meta(fd, st.st_size)
        except (ValueError, RecursionError, OSError):
            meta, offset = {}, 0
        finally:
            os.close(fd)
        size = st.st_size - offset
        total += size
        rows += _queue_rows(name, size, st.st_mtime, meta)
    if not rows:
        out("Mail queue is empty")
        return EX_OK
    out(f"{'-Queue ID-':<20} {'--Size--':>8} {'----Arrival Time----':<20}  -Sender/Recipient-------")
    for row in rows:
        out(row)
    out(f"-- {(total + 1023) // 1024} Kbytes in {len(names)} Request{'s' if len(names) != 1 else ''}.")
    return EX_OK
