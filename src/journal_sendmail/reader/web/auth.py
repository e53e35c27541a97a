"""The password file of ``journal-mail serve --auth``: one ``NAME:scrypt$N$r$p$SALT$HASH`` line per user.

Salted ``hashlib.scrypt`` hashes (salt and hash in base64); make a line with
``python3 -m journal_sendmail.reader.web.auth NAME`` (reads the password on
standard input or from the terminal).  Blank lines and ``#`` comments are allowed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sys
import threading

from ...errors import ConfigError
from ..safefile import read_secret

N, R, P = 2**14, 8, 1  # scrypt's recommended interactive cost: ~16 MiB, ~50 ms
_MAXMEM = 64 * 1024 * 1024
# Before anyone is known, a password check is the dearest thing a client can ask for
# (~16 MiB and ~50 ms of scrypt): this many run at once, this many more wait (each at
# most WAIT seconds); any other is told "busy" (503) at once.
CHECKS, WAITING, WAIT = 2, 8, 2.0


class Busy(Exception):
    """Too many password checks at once: try again later (503)."""


def hash_password(password: str, salt: bytes | None = None, n: int = N, r: int = R, p: int = P) -> str:
    """``scrypt$N$r$p$SALT$HASH`` for ``password`` (a new random salt unless given).

    >>> hash_password("pw", b"0123456789abcdef", n=2, r=1, p=1)
    'scrypt$2$1$1$MDEyMzQ1Njc4OWFiY2RlZg==$8dLI88EkpBoTYGnhkknm7DSwAUCPo6RRzYyf9uqhpbs='
    """
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    fields = ["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    return "$".join(fields)


class Passwords:
    """The users and hashes of one password file, checked when it is read."""

    def __init__(self, users: dict[str, tuple[int, int, int, bytes, bytes]]) -> None:
        self.users = users
        # scrypt costs ~50 ms by design and a browser sends the header with every request:
        # a header once proven is remembered (by a keyed digest, never the password) for this run.
        self._key = os.urandom(32)
        self._proven: dict[bytes, str] = {}
        self._running = threading.BoundedSemaphore(CHECKS)
        self._queue = threading.BoundedSemaphore(CHECKS + WAITING)
        # An unknown name costs what a known one costs (the first user's parameters, a salt
        # and hash no password matches): the time of a failure tells no name.
        n, r, p, _, digest = next(iter(users.values()))
        self._dummy = (n, r, p, os.urandom(16), os.urandom(len(digest)))

    @classmethod
    def load(cls, path: str) -> Passwords:
        """ConfigError (exit 78) for a file that cannot be read, that someone else could change
        (a link, not a regular file, owned by another user than root or this one, writable by
        group or others: whoever can write it can add a user), or that holds a line that is
        not a user."""
        try:
            lines = read_secret(path, "--auth", 0o022, 1 << 20).decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise ConfigError(f"--auth {path}: {e}") from None
        users: dict[str, tuple[int, int, int, bytes, bytes]] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, stored = line.partition(":")
            try:
                scheme, n, r, p, salt, digest = stored.split("$")
                if scheme != "scrypt" or not name or name in users:
                    raise ValueError
                entry = (int(n), int(r), int(p), base64.b64decode(salt, validate=True),
                         base64.b64decode(digest, validate=True))
                if entry[0] < 2 or entry[0] & (entry[0] - 1) or not 0 < entry[1] * entry[2] < 2**30 \
                        or len(entry[3]) < 8 or len(entry[4]) < 16 or 128 * entry[0] * entry[1] > _MAXMEM // 2:
                    raise ValueError
            except (ValueError, binascii.Error):
                raise ConfigError(f"--auth {path}, line {number}: not NAME:scrypt$N$r$p$SALT$HASH "
                                  "(make one with python3 -m journal_sendmail.reader.web.auth NAME)") from None
            users[name] = entry
        if not users:
            raise ConfigError(f"--auth {path}: no user in it")
        return cls(users)

    def check(self, name: str, password: str) -> bool:
        """Busy when CHECKS run and WAITING wait already (or the wait is over)."""
        entry = self.users.get(name)
        known = entry is not None
        n, r, p, salt, digest = entry if entry is not None else self._dummy
        if not self._queue.acquire(blocking=False):
            raise Busy
        try:
            if not self._running.acquire(timeout=WAIT):
                raise Busy
            try:
                got = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=n, r=r, p=p,
                                     maxmem=_MAXMEM, dklen=len(digest))
            finally:
                self._running.release()
        finally:
            self._queue.release()
        return hmac.compare_digest(got, digest) and known

    def check_header(self, header: str | None) -> str | None:
        """The user an ``Authorization: Basic …`` header proves, or None; Busy (see check)."""
        if not header or not header.startswith("Basic "):
            return None
        seen = hmac.new(self._key, header.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        if seen in self._proven:
            return self._proven[seen]
        try:
            name, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not (sep and self.check(name, password)):
            return None
        if len(self._proven) < 1024:
            self._proven[seen] = name
        return name


def main(argv: list[str] | None = None) -> int:
    import getpass

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or ":" in args[0] or not args[0]:
        print("usage: python3 -m journal_sendmail.reader.web.auth NAME  (prints NAME:scrypt$…)", file=sys.stderr)
        return 64
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("an empty password is not a password", file=sys.stderr)
        return 64
    print(f"{args[0]}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
