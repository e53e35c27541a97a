"""Silences: "no mail about this until then", added from the command line, ending by themselves (pure but for
their file).

``silences.json`` in the state directory holds them; ``journal-mail forward
silence add|list|expire`` changes it (under ``silences.lock``, replaced
atomically, never through a link), and the running service reads it again
whenever it changed (its size, time or inode), so no restart is needed.

A silence holds the mails whose journal time (``__REALTIME_TIMESTAMP``) falls in
[start, end) and that match every KEY=VALUE of it (the rules' match keys and
patterns: ``host``, ``unit`` and ``user`` are journald's word, the others are
the sender's claims — a forged mail can at most be silenced too, never routed).
A silenced mail is not sent to any destination; if its rule has a digest it is
still collected there (noted as silenced), else it stays in the journal only.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from .config import MATCH_KEYS, Pattern, Rule, duration, glob_regex
from .prefilter import Prefilter
from .rules import Mail
from .state import StateError, _open_private, nofollow, owner, replace

FILE = "silences.json"
LOCK = "silences.lock"
KEEP_ENDED = 7 * 86400.0  # seconds an ended silence stays listed


@dataclass(frozen=True)
class Silence:
    id: str
    match: tuple[tuple[str, str], ...]  # KEY, pattern
    start: float
    end: float
    comment: str = ""
    by: str = ""

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def rule(self) -> Rule:
        return Rule(name=f"silence {self.id}", match=tuple((k, (Pattern(v, glob_regex(v)),)) for k, v in self.match),
                    route=("-",))

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.match)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "match": [list(x) for x in self.match], "start": self.start, "end": self.end,
                "comment": self.comment, "by": self.by}


def parse_match(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` arguments; ConfigError (78) naming a bad one.

    >>> parse_match(["host=web3", "subject=SMART*"])
    (('host', 'web3'), ('subject', 'SMART*'))
    """
    out = []
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or k not in MATCH_KEYS or not v:
            raise ConfigError(f"--match {it!r}: want KEY=VALUE, KEY one of {', '.join(MATCH_KEYS)}")
        try:
            glob_regex(v)
        except Exception as e:  # re.error
            raise ConfigError(f"--match {it!r}: bad regular expression: {e}") from None
        out.append((k, v))
    if not out:
        raise ConfigError("silence add: give at least one --match KEY=VALUE")
    return tuple(out)


def _of(r: dict[str, Any]) -> Silence:
    return Silence(str(r["id"]), tuple((str(k), str(v)) for k, v in r["match"]), float(r["start"]), float(r["end"]),
                   str(r.get("comment", "")), str(r.get("by", "")))


def read(state_dir: str) -> list[Silence]:
    path = os.path.join(state_dir, FILE)
    try:
        with open(path, encoding="utf-8", opener=nofollow) as f:
            doc = json.load(f)
        return [_of(r) for r in doc.get("silences", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StateError(f"{path}: unreadable ({e})") from None


def _write(state_dir: str, silences: list[Silence]) -> None:
    replace(state_dir, FILE, json.dumps({"silences": [s.record() for s in silences]}, ensure_ascii=False,
                                        indent=1).encode())


def _locked(state_dir: str, change: Callable[[list[Silence]], Any]) -> Any:
    fd = _open_private(os.path.join(state_dir, LOCK), os.O_RDWR | os.O_CREAT)
    try:
        if o := owner(state_dir):
            os.fchown(fd, *o)
        fcntl.flock(fd, fcntl.LOCK_EX)
        silences = read(state_dir)
        out = change(silences)
        _write(state_dir, silences)
        return out
    finally:
        os.close(fd)


def add(state_dir: str, match: tuple[tuple[str, str], ...], for_: str, comment: str, now: float,
        by: str = "") -> Silence:
    try:
        length = duration(for_)
    except ValueError as e:
        raise ConfigError(f"--for: {e}") from None
    s = Silence(secrets.token_hex(4), match, now, now + length, comment, by)

    def change(silences: list[Silence]) -> Silence:
        silences[:] = [x for x in silences if x.end > now - KEEP_ENDED]
        silences.append(s)
        return s

    return _locked(state_dir, change)  # type: ignore[no-any-return]


def expire(state_dir: str, sid: str, now: float) -> Silence | None:
    """End silence ``sid`` now; None when there is no such silence still running."""

    def change(silences: list[Silence]) -> Silence | None:
        for i, x in enumerate(silences):
            if x.id == sid and x.end > now:
                silences[i] = Silence(x.id, x.match, x.start, max(x.start, now), x.comment, x.by)
                return silences[i]
        return None

    return _locked(state_dir, change)  # type: ignore[no-any-return]


class Silences:
    """The service's view of silences.json, read again when it changed; and which starts and ends were logged."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, FILE)
        self._sig: tuple[int, int, int] | None = None
        self.all: list[Silence] = []
        self._index: Prefilter[Silence] = Prefilter([])
        self.refresh()

    def refresh(self) -> bool:
        """Read the file again if it changed; True if it did."""
        try:
            st = os.stat(self.path)
            sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            sig = (0, 0, 0)
        if sig == self._sig:
            return False
        self._sig = sig  # a broken file is said once, not at every pass
        self.all = read(self.state_dir)
        self._index = Prefilter([(s, s.rule()) for s in self.all])
        return True

    def match(self, m: Mail, body: Callable[[], str]) -> Silence | None:
        """The silence that holds ``m`` (by its journal time), if any."""
        if not self.all:
            return None
        t = m.entry.realtime / 1_000_000
        return next((s for s in self._index.matching(m, body) if s.active(t)), None)

    def transitions(self, logged: dict[str, str], now: float) -> list[tuple[str, Silence]]:
        """("start" | "end", silence) not yet in ``logged`` (id -> what was logged), which it updates."""
        out = []
        for s in self.all:
            was = logged.get(s.id)
            if s.active(now) and was is None:
                out.append(("start", s))
                logged[s.id] = "start"
            elif now >= s.end and was != "end":
                if was is None and s.end > s.start:
                    out.append(("start", s))
                out.append(("end", s))
                logged[s.id] = "end"
        known = {s.id for s in self.all}
        for k in [k for k in logged if k not in known]:
            del logged[k]
        return out
