"""Filters: what to show, from the command line; the journal evaluates what it can."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..schema import MSG_MAIL, MSG_REFUSED
from ..users import uid_of
from .attrs import IN_PYTHON, LIST_FILTERS
from .entry import MailEntry
from .timespec import parse_time

Pattern = re.Pattern[str]


@dataclass(frozen=True)
class Filters:
    """What to show.  Values of one kind are alternatives; kinds combine with AND."""

    since: int | None = None  # µs since the epoch
    until: int | None = None
    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    uids: tuple[int, ...] = ()
    callers: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # _SYSTEMD_UNIT (journald's word)
    caller_units: tuple[str, ...] = ()  # MAIL_CALLER_UNIT (the sender's claim)
    hosts: tuple[str, ...] = ()
    boots: tuple[str, ...] = ()
    mail_ids: tuple[str, ...] = ()
    spooled: bool = False
    refused: bool = False  # also submissions that were refused but recorded
    subject: Pattern | None = None
    grep: Pattern | None = None

    def matches(self) -> list[str]:
        """The FIELD=value matches the journal evaluates itself.

        The user (``uids``) is not among them: a spooled mail's user is the spool file's
        owner, not the _UID of root's flusher (``wanted`` looks).

        >>> Filters(recipients=("root", "ops@x"), uids=(0,)).matches()
        ['MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172', 'MAIL_RCPT=root', 'MAIL_RCPT=ops@x']
        """
        out = [f"MESSAGE_ID={MSG_MAIL}"] + ([f"MESSAGE_ID={MSG_REFUSED}"] if self.refused else [])
        out += [f"MAIL_ID={v}" for v in self.mail_ids if len(v) == 32]
        out += [f"{a.field}={v}" for a in LIST_FILTERS if a.field for v in getattr(self, a.filter)]
        out += [f"_BOOT_ID={v}" for v in self.boots]
        if self.spooled:
            out.append("MAIL_SPOOLED=yes")
        return out


def wanted(e: MailEntry, filters: Filters, body: Callable[[MailEntry], str] | None = None) -> bool:
    """Does ``e`` pass the filters the journal cannot evaluate itself?  ``body``: the text
    ``--grep`` searches (the stored MAIL_TEXT or the decoded raw message; None: MAIL_TEXT)."""
    for name, test in IN_PYTHON:  # the attribute table's
        asked = getattr(filters, name)
        if asked and not test(e, asked):
            return False
    if filters.mail_ids and not any(e.mail_id.startswith(p.lower()) for p in filters.mail_ids):
        return False
    if filters.subject is not None and not filters.subject.search(e.subject):
        return False
    return filters.grep is None or filters.grep.search(body(e) if body else e.text or "") is not None


def regex(text: str, smart_case: bool) -> re.Pattern[str]:
    """``/REGEX/`` as a regex; otherwise (subject) a case-blind substring or (grep) a smart-case regex.

    >>> bool(regex("/^Cron <.*>$/", False).search("Cron <root@h>")), bool(regex("disk FULL", False).search("Disk full"))
    (True, True)
    """
    try:
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            return re.compile(text[1:-1])
        if smart_case:
            return re.compile(text, 0 if any(c.isupper() for c in text) else re.IGNORECASE)
        return re.compile(re.escape(text), re.IGNORECASE)
    except re.error as e:
        raise UsageError(f"bad regular expression {text!r}: {e}") from None


def make_filters(given: Mapping[str, Any], mail_ids: Iterable[str] = ()) -> Filters:
    """Filters from what the command line (its options' values, by ``attrs`` name) or the web
    (its query parameters) gives, checked before the journal is opened (``--boot`` values stay
    as given until ``select.resolved``)."""

    def when(text: str | None) -> int | None:
        if text is None:
            return None
        try:
            return parse_time(text)
        except ValueError as e:
            raise UsageError(str(e)) from None

    values: dict[str, list[Any]] = {a.filter: [] for a in LIST_FILTERS}
    for a in LIST_FILTERS:
        for v in given.get(a.name) or ():
            values[a.filter].append(_uid_of(v) if a.name == "user" else _uid(v) if a.name == "uid" else v)
    subject, grep = given.get("subject"), given.get("grep")
    ids = tuple(i.lower() for i in mail_ids)
    return Filters(
        since=when(given.get("since")),
        until=when(given.get("until")),
        boots=tuple(given.get("boot") or []),
        mail_ids=ids,
        spooled=bool(given.get("spooled")),
        refused=bool(given.get("refused")) or bool(ids),
        subject=regex(subject, False) if subject is not None else None,
        grep=regex(grep, True) if grep is not None else None,
        **{k: tuple(v) for k, v in values.items()},
    )


def _uid(v: int | str) -> int:
    if isinstance(v, int) or v.isdigit():
        return int(v)
    raise UsageError(f"--uid: want a number, not {v!r}")


def _uid_of(name: str) -> int:
    uid = uid_of(name)
    if uid is None:
        raise UsageError(f"no such user {name!r}")
    return uid
