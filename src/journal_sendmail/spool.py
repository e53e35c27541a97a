"""Spool: where a message goes when the journal cannot take it: the files,
written by any user and read back by the flusher (``flush``).

The directory is mode 1733 root:root: anyone may create a file, nobody but
root may list it or read others' files.  A spool file is written
atomically (a hidden name with O_EXCL, write, fsync, rename, fsync the
directory) with mode 0600.  Its format (version 1)::

    JOURNAL-SENDMAIL-SPOOL 1\\n
    <one line of JSON: the invocation and the submission's metadata>\\n
    <the raw message, byte for byte, to the end of the file>

Reading one back trusts nothing in the file about who sent it: the sender is
the file's owner (fstat on the open descriptor), recorded as MAIL_SPOOL_UID.
``open_checked`` refuses, without reading its content, anything that is not a
plain file of one link owned by a real user and within the size limit.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from .config import Config
from .errors import SpoolError
from .message import Raw, write_all
from .schema import CALLER_FIELDS, MAIL_CALLER_PID, MAIL_SPOOL_UID, MAIL_SPOOLED, MAIL_SUBMITTED_AT, SMTP_FIELDS
from .submission import Envelope, Submission
from .users import exists

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


MAGIC = b"JOURNAL-SENDMAIL-SPOOL 1\n"
# What a spool file may add to an entry besides the message and the recorded
# options: the fields of the SMTP envelope (-bs); and what it may say about
# the caller (submission.caller_fields writes these, schema.CALLER_FIELDS).
EXTRA_FIELDS = frozenset(SMTP_FIELDS)
META_MAX = 1 << 20  # the JSON line may not be longer than this


def write(sub: Submission, env: Envelope, cfg: Config, reason: str) -> str:
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
        "envelope": {"from": env.sender, "rcpts": env.recipients},  # mailq's view
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


class Refused(Exception):
    """A spool entry the flusher will not read."""


def open_checked(cfg: Config, name: str) -> tuple[int, os.stat_result]:
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
        if st.st_nlink == 0:  # another flusher re-injected and removed it since we opened it
            raise FileNotFoundError(errno.ENOENT, "removed meanwhile", path)
        if st.st_nlink != 1:
            raise Refused(f"a file with {st.st_nlink} links (a hard link)")
        if st.st_size > cfg.spool_limit:
            raise Refused(f"{st.st_size} bytes, more than the limit of {cfg.spool_limit}")
        if not exists(st.st_uid):
            raise Refused(f"owned by uid {st.st_uid}, which is no user of this system")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def _number(value: Any, high: float, name: str) -> int | float:
    """A number of the metadata, from 0 to ``high``; ValueError names it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ValueError(f"{name} is not a number from 0 to {high:g}")
    return value


def read_meta(fd: int, size: int) -> tuple[dict[str, Any], int]:
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


def load(fd: int, st: os.stat_result, part_size: int) -> Submission:
    """The submission in the open spool file ``fd`` (its ``fstat`` is ``st``).

    Who sent it comes from the file's owner only.  Raises ValueError (or
    whatever else a forged file makes the parsers raise) when it is malformed.
    The caller closes the returned submission's ``raw``.
    """
    from .message import from_fd

    meta, offset = read_meta(fd, st.st_size)
    raw = from_fd(fd, offset, st.st_size - offset, part_size)
    try:
        return _rebuild(meta, raw, st.st_uid, part_size)
    except BaseException:
        raw.close()
        raise


def _rebuild(meta: dict[str, Any], raw: Raw, owner: int, part_size: int) -> Submission:
    import base64

    from .options import OPTIONS, RECORD, Invocation
    from .users import login_name

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
    raw.after_dot = base64.b64decode(str(meta.get("after_dot", "")))[:part_size]
    raw.after_dot_size = max(len(raw.after_dot), int(_number(meta.get("after_dot_size", 0), 1 << 63, "after_dot_size")))
    raw.received = max(int(_number(meta.get("received", raw.size), 1 << 63, "received")), raw.size)
    submitted = _number(meta.get("submitted_at", 0), 1 << 40, "submitted_at")
    # only the caller's fields, by their names, with text values: a forged
    # name could not be encoded (and would stop the flusher), a forged value
    # of another type is not what the sender recorded
    callers = meta.get("caller", {})
    caller = {k: v for k, v in (callers.items() if isinstance(callers, dict) else ())
              if k in CALLER_FIELDS and isinstance(v, str)}
    if not caller.get(MAIL_CALLER_PID, "1").isdigit():
        del caller[MAIL_CALLER_PID]
    # only the SMTP envelope: a forged MESSAGE_ID or _UID must not reach the entry
    extras = meta.get("extra", [])
    extra = [(n, base64.b64decode(v)) for n, v in extras if n in EXTRA_FIELDS and isinstance(v, str)]
    extra += [
        (MAIL_SPOOLED, b"yes"),
        (MAIL_SPOOL_UID, str(owner).encode()),
        (MAIL_SUBMITTED_AT, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(submitted)).encode()),
    ]
    refused = meta.get("refused")
    return Submission(
        inv=inv, raw=raw, mail_id=mail_id, login=login_name(owner), caller=caller,
        submitted_at=submitted, refused=refused if isinstance(refused, str) else None, extra=extra,
    )
