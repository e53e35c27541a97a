"""Who is at the other end of a connection, as the kernel says, and may that user read
the journal: the web inbox without ``--auth`` shows its mail only to those.

A unix socket's peer comes from ``SO_PEERCRED``; a loopback TCP peer from the owner
of the client's own socket in ``/proc/net/tcp`` / ``tcp6`` (the kernel's table: the
uid that made that socket).  Nothing the client says (no header) counts.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import socket
import struct
import threading
import time

READER_GROUPS = ("adm", "systemd-journal")  # they read the whole system journal on Debian


def unix_peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process that connected to a unix socket."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _hex_address(host: str, port: int) -> tuple[str, str]:
    """``host:port`` as ``/proc/net/tcp{,6}`` writes it (each 32-bit word in host order),
    and which of the two tables holds it.

    >>> import sys
    >>> _hex_address("127.0.0.1", 8025) == (("0100007F" if sys.byteorder == "little" else "7F000001") + ":1F59", "tcp")
    True
    """
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if ip.version == 4:
        (word,) = struct.unpack("=I", ip.packed)
        return f"{word:08X}:{port:04X}", "tcp"
    words = struct.unpack("=4I", ip.packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}", "tcp6"


def tcp_peer_uid(client: tuple[str, int], server: tuple[str, int], proc: str = "/proc/net") -> int | None:
    """The uid owning the client end of the TCP connection ``client`` -> ``server``, or
    None when the kernel lists no such socket with an owner (closed, orphaned: an
    orphan's uid reads as 0, so it never counts)."""
    candidates = []
    c_host, s_host = client[0], server[0]
    for host_c, host_s in ((c_host, s_host), _unmapped(c_host, s_host)):
        if host_c is None or host_s is None:
            continue
        local, table = _hex_address(host_c, client[1])
        remote, table_s = _hex_address(host_s, server[1])
        if table == table_s:
            candidates.append((table, local, remote))
    for table, local, remote in candidates:
        try:
            with open(os.path.join(proc, table), encoding="ascii") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                    if len(cols) >= 10 and cols[1] == local and cols[2] == remote:
                        if cols[9] == "0":  # no file behind it: an orphan, whose uid is not its maker's
                            return None
                        return int(cols[7])
        except OSError:
            continue
    return None


def _unmapped(client: str, server: str) -> tuple[str | None, str | None]:
    """An IPv4 client on a dual-stack socket is shown as ``::ffff:a.b.c.d``; its own socket is IPv4."""
    try:
        c, s = ipaddress.ip_address(client.split("%", 1)[0]), ipaddress.ip_address(server.split("%", 1)[0])
    except ValueError:
        return None, None
    if isinstance(c, ipaddress.IPv6Address) and c.ipv4_mapped is not None:
        s4 = s.ipv4_mapped if isinstance(s, ipaddress.IPv6Address) else s
        return str(c.ipv4_mapped), str(s4) if s4 is not None else None
    return None, None


def reader_gids() -> set[int]:
    out = set()
    for name in READER_GROUPS:
        try:
            out.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass
    return out


class Readers:
    """Which uids may read what this server shows, cached for a few seconds (an admin's
    ``adduser alice adm`` counts soon; a burst of connections asks NSS once)."""

    TTL = 10.0

    def __init__(self) -> None:
        self.me = os.geteuid()
        gids = reader_gids()
        # A server that reads only its own user's journal (an ordinary user ran it) shows it
        # only to that user; one that reads the system journal, to those who may read that.
        self.privileged = self.me == 0 or bool(gids & ({os.getegid(), *os.getgroups()}))
        self._cache: dict[int, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def allowed(self, uid: int | None) -> bool:
        if uid is None:
            return False
        if uid in (0, self.me):
            return True
        if not self.privileged:
            return False
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(uid)
        if hit is not None and now - hit[0] < self.TTL:
            return hit[1]
        ok = self._reads_journal(uid)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[uid] = (now, ok)
        return ok

    @staticmethod
    def _reads_journal(uid: int) -> bool:
        try:
            pw = pwd.getpwuid(uid)
            groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
        except (KeyError, OSError):
            return False
        return bool(groups & reader_gids())
