"""Safe files: what journal-mail writes as root never goes through a link nor
into a directory another user controls.

A directory is reached from ``/`` one component at a time with
``O_NOFOLLOW|O_DIRECTORY`` relative to the one before (so no symbolic link
anywhere on the way is followed), and every component must be owned by root
or the caller and writable by nobody else (a sticky directory such as
``/tmp`` is allowed on the way and for a single output file, where
``O_NOFOLLOW`` and the owner and link-count checks on the file itself close
the gaps).  Files are then created relative to the directory's descriptor
with ``O_EXCL|O_NOFOLLOW`` under a fresh temporary name and renamed into
place.  Everything refused is an ``UnsafePath`` (exit 73, EX_CANTCREAT).
"""

from __future__ import annotations

import os
import secrets
import stat

from ..errors import ConfigError
from ..message import write_all
from .errors import OutputError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OutputError):
    """A path another user could redirect: a link, or a directory someone else controls."""

    tag = "unsafe-path"


def _check_dir(fd: int, path: str, strict: bool) -> None:
    """``path`` (open as ``fd``) is owned by root or us and nobody else may write it.

    ``strict``: the directory written into itself, owned by us (root's may do
    for root) and writable by no group or other, sticky or not.
    """
    st = os.fstat(fd)
    me = os.geteuid()
    if st.st_uid not in (0, me) or (strict and st.st_uid != me):
        raise UnsafePath(f"{path}: directory owned by uid {st.st_uid}, not by the caller (uid {me}); refused")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and (strict or not st.st_mode & stat.S_ISVTX):
        raise UnsafePath(f"{path}: directory writable by others (mode {stat.S_IMODE(st.st_mode):04o}); refused")


def open_dir(path: str, create: bool = False, mode: int = 0o700, strict: bool = True,
             parents_mode: int | None = None) -> int:
    """A descriptor of directory ``path``, reached without following any link that
    someone else could have made.

    The path is walked one component at a time from ``/`` (or the working
    directory), each opened with ``O_NOFOLLOW`` relative to the one before; a
    symbolic link on the way is followed only when root or the caller owns it
    (as /var/run is).  Every directory on the way is checked (``_check_dir``),
    the last one as ``strict``.  ``create``: make the last component (``mode``)
    when it is missing, and with ``parents_mode`` the missing ones before it.
    """
    me = os.geteuid()
    comps = [c for c in os.path.abspath(path).split("/") if c and c != "."]
    stack = [(os.open("/", DIR_FLAGS), "/")]
    links = 0
    try:
        _check_dir(stack[0][0], "/", strict=strict and not comps)
        while comps:
            name = comps.pop(0)
            last = not comps
            fd, here = stack[-1]
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            where = os.path.join(here, name)
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create or not (last or parents_mode is not None):
                    raise
                try:
                    os.mkdir(name, mode if last else parents_mode or mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made in between: looked at below like any other
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid not in (0, me):
                    raise UnsafePath(f"{where}: a symbolic link of uid {st.st_uid}'s; refused")
                links += 1
                if links > 40:
                    raise UnsafePath(f"{where}: too many symbolic links; refused")
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                comps = [c for c in target.split("/") if c and c != "."] + comps
                continue
            try:
                nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (40, 20):  # ELOOP, ENOTDIR: made a link in between, or not a directory
                    raise UnsafePath(f"{where}: not a directory; refused") from None
                raise
            stack.append((nfd, where))
            _check_dir(nfd, where, strict=strict and not comps)
        fd = stack.pop()[0]
        return fd
    except UnsafePath:
        raise
    except OSError as e:
        raise OutputError(f"cannot open {path}: {e.strerror}") from None
    finally:
        for fd, _ in stack:
            os.close(fd)


def write_file(dir_fd: int, name: str, data: bytes, mode: int = 0o600, dir_path: str = "", sync: bool = True,
               owner: tuple[int, int] | None = None) -> None:
    """``name`` in the directory ``dir_fd`` holds ``data``, whole or not at all: written
    under a fresh ``O_EXCL|O_NOFOLLOW`` temporary name, synced (``sync``), given to ``owner``
    (uid, gid) if any, renamed into place."""
    if "/" in name or name in ("", ".", ".."):
        raise UnsafePath(f"{name!r}: not a file name; refused")
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    where = os.path.join(dir_path, name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        try:
            write_all(fd, data)
            if owner:
                os.fchown(fd, *owner)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise OutputError(f"cannot write {where}: {e.strerror}") from None


def _check_file(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{path}: not a regular file; refused")
    if st.st_uid != os.geteuid() or st.st_nlink != 1:
        raise UnsafePath(f"{path}: owned by uid {st.st_uid} or with other hard links; refused")


def split(path: str) -> tuple[str, str]:
    head, name = os.path.split(os.path.abspath(path))
    if not name:
        raise UnsafePath(f"{path}: not a file name; refused")
    return head, name


def open_output(path: str, append: bool, mode: int = 0o640) -> int:
    """A descriptor to write ``path`` (``-o FILE``): an existing file only when it is
    ours, regular and has no other link; a new one made with ``O_EXCL``.  Never
    through a link; its directory may be sticky (``/tmp``) but no one else's."""
    head, name = split(path)
    dfd = open_dir(head, strict=False)
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        try:
            fd = os.open(name, flags | (os.O_APPEND if append else 0), dir_fd=dfd)
        except FileNotFoundError:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | (os.O_APPEND if append else 0), mode, dir_fd=dfd)
        except OSError as e:
            if e.errno == 40:  # ELOOP: the name is a symbolic link
                raise UnsafePath(f"{path}: a symbolic link; refused") from None
            raise
        try:
            _check_file(fd, path)
            if not append:
                os.ftruncate(fd, 0)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd
    except OSError as e:
        raise OutputError(f"cannot open {path}: {e.strerror}") from None
    finally:
        os.close(dfd)


def read_small(path: str, limit: int = 1 << 16) -> bytes | None:
    """At most ``limit`` bytes of a small file of ours (a cursor); None when it is missing.
    Never through a link; a file someone else owns is refused."""
    head, name = split(path)
    dfd = open_dir(head, strict=False)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == 40:
                raise UnsafePath(f"{path}: a symbolic link; refused") from None
            raise OutputError(f"cannot read {path}: {e.strerror}") from None
        try:
            _check_file(fd, path)
            return os.read(fd, limit)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def replace_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """``path`` holds ``data`` (a cursor, a state file), atomically, never through a link;
    its directory may be sticky but no one else's."""
    head, name = split(path)
    dfd = open_dir(head, strict=False)
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()):
            raise UnsafePath(f"{path}: not a regular file of the caller's; refused")
        write_file(dfd, name, data, mode, head)
    finally:
        os.close(dfd)


def read_secret(path: str, what: str, mask: int, limit: int) -> bytes:
    """At most ``limit`` bytes of a file that holds secrets (a relay password, the
    inbox's password hashes): a regular file, not a link, owned by root or the
    caller, and none of the mode bits in ``mask`` set (0o177: readable by nobody
    else; 0o022: writable by nobody else).  ConfigError (exit 78) naming ``what``
    (the setting) otherwise: whoever can change such a file gets in."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        if os.path.islink(path):
            raise ConfigError(f"{what} {path}: a symbolic link (name the file itself)") from None
        raise ConfigError(f"{what} {path}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        raise ConfigError(f"{what} {path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_uid not in (0, os.geteuid()):
            raise ConfigError(f"{what} {path}: owned by uid {st.st_uid}, not by root (chown root it)")
        if st.st_mode & mask:
            who = "readable" if mask & 0o044 else "writable"
            raise ConfigError(f"{what} {path}: mode {stat.S_IMODE(st.st_mode):04o}, {who} by group or others "
                              "(chmod 600 it)")
        try:
            return f.read(limit)
        except OSError as e:
            raise ConfigError(f"{what} {path}: {e.strerror or e}") from None
