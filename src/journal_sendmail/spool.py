"""Spool: where a message goes when the journal cannot take it, and the
flusher (``-q``) that re-injects it.

The directory is mode 1733 root:root: anyone may create a file, nobody but
root may list it or read others' files.  A spool file is written
atomically (a hidden name with O_EXCL, write, fsync, rename, fsync the
directory) with mode 0600.  Its format (version 1)::

    JOURNAL-SENDMAIL-SPOOL 1\\n
    <one line of JSON: the invocation and the submission's metadata>\\n
    <the raw message, byte for byte, to the end of the file>

The flusher trusts nothing in the file about who sent it: the sender is the
file's owner (fstat on the open descriptor), recorded as MAIL_SPOOL_UID.
It refuses, without reading its content, anything that is not a plain
file of one link owned by a real user and within the size limit, and moves
it to ``.quarantine/``.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from .config import Config
from .errors import EX_OK, EX_TEMPFAIL, JournalError, SpoolError
from .message import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .deliver import Submission
    from .message import Raw

    Out = Callable[[str], None]


MAGIC = b"JOURNAL-SENDMAIL-SPOOL 1\n"
# What a spool file may add to an entry besides the message and the recorded
# options: the fields of the SMTP envelope (-bs).
EXTRA_FIELDS = frozenset(("MAIL_PROTOCOL", "MAIL_SMTP_HELO", "MAIL_SMTP_MAIL_PARAMS", "MAIL_SMTP_RCPT_PARAMS"))
QUARANTINE = ".quarantine"
META_MAX = 1 << 20  # the JSON line may not be longer than this


def write(sub: Submission, cfg: Config, reason: str) -> str:
    """Write the submission to the spool; return the file's name."""
    import base64
    import json

    meta = {
        "mail_id": sub.mail_id,
        "submitted_at": sub.submitted_at,
        "pid": os.getpid(),
        "reason": reason,
        "argv": list(sub.inv.argv),
        "invoked_as": sub.inv.invoked_as,
        "sender": sub.inv.sender,
        "full_name": sub.inv.full_name,
        "extract": sub.inv.extract,
        "recipients": list(sub.inv.recipients),
        "recorded": [list(r) for r in sub.inv.recorded],
        "caller": sub.caller,
        "refused": sub.refused,
        "received": sub.raw.received,
        "after_dot": base64.b64encode(sub.raw.after_dot).decode(),
        "after_dot_size": sub.raw.after_dot_size,
        "extra": [[n, base64.b64encode(v).decode()] for n, v in sub.extra],
        "envelope": _envelope(sub),
    }
    header = MAGIC + json.dumps(meta, separators=(",", ":")).encode() + b"\n"
    name = sub.mail_id[:16]  # the queue id mailq shows: the start of MAIL_ID
    tmp = os.path.join(cfg.spool, f".{name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise SpoolError(f"spool {cfg.spool}: {e.strerror}") from None
    try:
        try:
            write_all(fd, header)
            for chunk in sub.raw.chunks(cfg.part_size):
                write_all(fd, chunk)
            os.fsync(fd)
            os.rename(tmp, os.path.join(cfg.spool, name))
        except OSError as e:
            _unlink_quietly(tmp)
            raise SpoolError(f"spool {cfg.spool}: {e.strerror}") from None
        _sync_directory(cfg.spool, fd)
    finally:
        os.close(fd)
    return name


def _envelope(sub: Submission) -> dict[str, Any]:
    """Sender and recipients as the sender saw them (for mailq only)."""
    from . import headers, record

    try:
        hdrs = headers.parse(sub.raw.head)
        rcpts = record.recipients(sub.inv.recipients, hdrs.header_recipients, sub.inv.extract)
        sender = record.envelope_sender(sub.inv.sender, hdrs.unixfrom, sub.login)
    except Exception:  # mailq's view must never stop a message from being spooled
        return {}
    return {"from": sender, "rcpts": rcpts}


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(path: str, file_fd: int) -> None:
    """fsync the directory so the rename survives a crash.

    In a 1733 directory only root may open it; anyone else syncs the file
    system the file is on instead (syncfs), which covers the directory too.
    """
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        import ctypes

        ctypes.CDLL(None, use_errno=True).syncfs(file_fd)
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# ---------------------------------------------------------------- the flusher


class Refused(Exception):
    """A spool entry the flusher will not read."""


def _names(cfg: Config) -> list[str]:
    return sorted(n for n in os.listdir(cfg.spool) if not n.startswith("."))


def _open_checked(cfg: Config, name: str) -> tuple[int, os.stat_result]:
    """Open a spool entry safely; Refused with the reason if it is not plain.

    O_NOFOLLOW refuses a symlink, O_NONBLOCK keeps a FIFO from blocking, and
    every check is made with fstat on the open descriptor: no race between
    a check and the open.
    """
    path = os.path.join(cfg.spool, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused("a symbolic link") from None
        if e.errno == errno.ENXIO:
            raise Refused("a socket") from None
        raise
    try:
        st = os.fstat(fd)
        kind = stat.S_IFMT(st.st_mode)
        if kind != stat.S_IFREG:
            what = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
                    stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}.get(kind, "not a regular file")
            raise Refused(what)
        if st.st_nlink != 1:
            raise Refused(f"a file with {st.st_nlink} links (a hard link)")
        if st.st_size > cfg.spool_limit:
            raise Refused(f"{st.st_size} bytes, more than the limit of {cfg.spool_limit}")
        if not _real_user(st.st_uid):
            raise Refused(f"owned by uid {st.st_uid}, which is no user of this system")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def _real_user(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


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


def _read_meta(fd: int, size: int) -> tuple[dict[str, Any], int]:
    """The metadata and the offset of the raw message; ValueError if malformed."""
    import json

    head = os.pread(fd, min(size, len(MAGIC) + META_MAX), 0)
    if not head.startswith(MAGIC):
        raise ValueError("not a journal-sendmail spool file")
    end = head.find(b"\n", len(MAGIC))
    if end < 0:
        raise ValueError("no end to the metadata line")
    meta = json.loads(head[len(MAGIC):end])
    if not isinstance(meta, dict):
        raise ValueError("metadata is not an object")
    return meta, end + 1


def _submission(meta: dict[str, Any], raw: Raw, owner: int) -> Submission:
    """Rebuild the submission; who sent it comes from the file's owner only."""
    import base64

    from .caller import login_name
    from .deliver import Submission
    from .options import OPTIONS, RECORD, Invocation

    recordable = {o.action for o in OPTIONS if o.kind == RECORD}

    def strs(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("a list of strings was expected")
        return tuple(value)

    def opt_str(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError("a string was expected")
        return value

    inv = Invocation(
        argv=strs(meta.get("argv", [])),
        invoked_as=str(meta.get("invoked_as", "sendmail")),
        sender=opt_str(meta.get("sender")),
        full_name=opt_str(meta.get("full_name")),
        extract=bool(meta.get("extract", False)),
        recipients=strs(meta.get("recipients", [])),
        recorded=tuple((str(n), str(v)) for n, v in meta.get("recorded", []) if str(n) in recordable),
    )
    mail_id = str(meta.get("mail_id", ""))
    if len(mail_id) != 32 or any(c not in "0123456789abcdef" for c in mail_id):
        mail_id = os.urandom(16).hex()
    raw.after_dot = base64.b64decode(meta.get("after_dot", ""))
    raw.after_dot_size = int(meta.get("after_dot_size", 0))
    received = int(meta.get("received", raw.size))
    raw.received = max(received, raw.size)
    submitted = float(meta.get("submitted_at", 0))
    caller = {str(k): str(v) for k, v in dict(meta.get("caller", {})).items() if str(k).startswith("MAIL_CALLER_")}
    # only the SMTP envelope: a forged MESSAGE_ID or _UID must not reach the entry
    extra = [(str(n), base64.b64decode(v)) for n, v in meta.get("extra", []) if str(n) in EXTRA_FIELDS]
    extra += [
        ("MAIL_SPOOLED", b"yes"),
        ("MAIL_SPOOL_UID", str(owner).encode()),
        ("MAIL_SUBMITTED_AT", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(submitted)).encode()),
    ]
    refused = meta.get("refused")
    return Submission(
        inv=inv, raw=raw, mail_id=mail_id, login=login_name(owner), caller=caller,
        submitted_at=submitted, refused=refused if isinstance(refused, str) else None, extra=extra,
    )


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
    from .message import from_fd

    me = os.geteuid()
    try:
        fd, st = _open_checked(cfg, name)
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
            meta, offset = _read_meta(fd, st.st_size)
            raw = from_fd(fd, offset, st.st_size - offset, cfg.part_size)
            sub = _submission(meta, raw, st.st_uid)
        except Exception as e:  # anything a forged file can make the parsers raise (RecursionError too)
            if me != 0:
                out(f"journal-sendmail: spool file {name} is malformed: {e}")
                return "skipped"
            return _refuse(cfg, name, f"malformed: {e}", quarantine, out)
        try:
            store(sub, cfg)  # JournalError: the file stays for the next flush
        finally:
            raw.close()
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
            fd, st = _open_checked(cfg, name)
        except (Refused, OSError):
            rows.append(f"{name[:20]:<20} {'?':>8} {'(refused by the flusher)':<20}")
            continue
        try:
            meta, offset = _read_meta(fd, st.st_size)
        except (ValueError, OSError):
            meta, offset = {}, 0
        finally:
            os.close(fd)
        size = st.st_size - offset
        total += size
        when = time.strftime("%a %b %d %H:%M:%S", time.localtime(float(meta.get("submitted_at", st.st_mtime))))
        env = meta.get("envelope") or {}
        rows.append(f"{name[:20]:<20} {size:>8} {when}  {env.get('from', '?')}")
        reason = str(meta.get("reason", ""))
        if reason:
            rows.append(f"{'':<30}({reason[:70]})")
        for rcpt in env.get("rcpts", []):
            rows.append(f"{'':<40} {rcpt}")
        rows.append("")
    if not rows:
        out("Mail queue is empty")
        return EX_OK
    out(f"{'-Queue ID-':<20} {'--Size--':>8} {'----Arrival Time----':<20}  -Sender/Recipient-------")
    for row in rows:
        out(row)
    out(f"-- {(total + 1023) // 1024} Kbytes in {len(names)} Request{'s' if len(names) != 1 else ''}.")
    return EX_OK
