"""Attributes: the one table of what can be asked of a mail, by name.

Each name means one thing everywhere: the ``list`` option ``--NAME`` (a
``_`` spelled ``-``), the web's query parameter ``?NAME=``, ``stats --by``,
a forward rule's ``match.NAME`` and a digest's ``group_by``.  A row says
whether journald vouches for the value (``trusted``: its ``_FIELDS``, or the
spool owner root's flusher read) or the sender only claims it (``MAIL_*``:
any local user can write those), how it is read from an entry (``values``:
what a rule matches; ``group``: the group(s) a mail counts in), and how it is
matched: by the journal (``field``), by the index (``column``), in Python
(``test``: does a mail pass the values of ``Filters``' field ``filter``, in ``filters.wanted``).  Table-driven, as
python-systemd converts fields (``DEFAULT_CONVERTERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..users import name_of
from .entry import MailEntry


@dataclass(frozen=True)
class Attr:
    name: str
    trusted: bool
    values: Callable[[MailEntry], tuple[str, ...]]  # what a rule's patterns look at
    group: Callable[[MailEntry], tuple[str, ...]] | None = None  # the stats/digest group(s); None: not grouped
    help: str = ""  # its ``list`` option ("": none)
    filter: str = ""  # the Filters field of its ``list`` option
    field: str = ""  # the journal field the journal matches it by ("": looked at in Python)
    column: str = ""  # the index's column for it ("": none)
    stats: str = ""  # its ``stats --by`` name, where that is older than this table (sender, recipient)
    metavar: str = ""  # its option's value, in --help
    test: Callable[[MailEntry, tuple[Any, ...]], bool] | None = None  # ``filters.wanted``'s look (None: none)


def trusted_uid(e: MailEntry) -> int | None:
    """The uid that submitted the mail, by journald's word (or root's flusher's): the
    entry's ``uid`` (``entry.to_entry`` trusts a spool uid only from root's flusher).

    >>> trusted_uid(MailEntry(mail_id="", uid=1000, writer_uid=0, spooled=True, spool_uid=1000))
    1000
    >>> trusted_uid(MailEntry(mail_id="", uid=0, spooled=True, spool_uid=1000))  # made by hand, not by to_entry
    1000
    """
    if e.writer_uid is None and e.spooled and e.uid == 0 and e.spool_uid is not None:
        return e.spool_uid
    return e.uid


def _uid(e: MailEntry) -> tuple[str, ...]:
    uid = trusted_uid(e)
    return () if uid is None else (str(uid),)


def _user(e: MailEntry) -> tuple[str, ...]:
    name = name_of(trusted_uid(e))
    return () if name is None else (name,)


def _user_group(e: MailEntry) -> tuple[str, ...]:
    """The login name, else the uid: a uid without a name is still a group of its own."""
    return _user(e) or _uid(e)


def from_matches(e: MailEntry, senders: tuple[str, ...]) -> bool:
    """``--from``: the envelope sender as given, or the address of the From header (any case).

    >>> e = MailEntry(mail_id="", envelope_from="www-data", headers={"from": "Shop <Shop@example.org>"})
    >>> from_matches(e, ("www-data",)), from_matches(e, ("shop@example.org",)), from_matches(e, ("Shop",))
    (True, True, False)
    """
    if e.envelope_from in senders:
        return True
    header = e.headers.get("from")
    if not header:
        return False
    from ..headers import addresses

    try:
        found = {a.lower() for a in addresses(header)}
    except Exception:  # a From header no parser takes: only the envelope counts
        return False
    return any(s.lower() in found for s in senders)


ATTRS = {a.name: a for a in (
    Attr("host", True, lambda e: (e.hostname,), lambda e: (e.hostname,), "stored on HOST", "hosts", "_HOSTNAME",
         "m.hostname"),
    Attr("unit", True, lambda e: (e.unit,), lambda e: (e.unit,),
         "submitted from the systemd unit UNIT (cron.service, …), by journald's word", "units", "", "m.unit",
         metavar="UNIT", test=lambda e, asked: e.systemd_unit in asked),
    Attr("caller_unit", False, lambda e: (e.caller_unit,), None,
         "the unit the sender says it ran in (MAIL_CALLER_UNIT: anyone can claim one)", "caller_units",
         metavar="UNIT", test=lambda e, asked: e.caller_unit in asked),
    Attr("caller", False, lambda e: (e.caller_comm,), lambda e: (e.caller_comm,), "handed over by COMM (cron, sudo…)",
         "callers", "MAIL_CALLER_COMM", "m.caller_comm", metavar="COMM"),
    Attr("user", True, _user, _user_group, "submitted by this user (login name)", "uids", metavar="NAME"),
    Attr("uid", True, _uid, _uid, "submitted by this uid", "uids", "", "m.uid",
         test=lambda e, asked: e.uid in asked),  # --user too: its Filters field is the uids
    Attr("from", False, lambda e: (e.envelope_from, e.headers.get("from", "")), lambda e: (e.envelope_from,),
         "envelope sender, or the address of the From header", "senders", stats="sender", metavar="ADDR",
         test=from_matches),
    Attr("to", False, lambda e: (*e.recipients, e.headers.get("to", ""), e.headers.get("cc", "")),
         lambda e: tuple(dict.fromkeys(e.recipients)), "envelope recipient", "recipients", "MAIL_RCPT",
         stats="recipient", metavar="ADDR"),
    Attr("subject", False, lambda e: (e.subject,), lambda e: (e.subject,), column="m.subject"),
    Attr("kind", True, lambda e: (e.kind,)),
)}
BY_STATS = {a.stats or a.name: a for a in ATTRS.values() if a.group is not None and a.name != "uid"}
LIST_FILTERS = [a for a in ATTRS.values() if a.help]  # the ``list`` options and web parameters of this table
MATCH_KEYS = (*ATTRS, "body")  # a forward rule's match keys (``body``: the readable body)
GROUP_KEYS = tuple(a.name for a in ATTRS.values() if a.group is not None)  # a digest's group_by
IN_PYTHON = [(a.filter, a.test) for a in ATTRS.values() if a.test is not None]  # what the journal's matches cannot say


def values(e: MailEntry, name: str) -> tuple[str, ...]:
    return ATTRS[name].values(e)


def group(e: MailEntry, name: str) -> tuple[str, ...]:
    """The group(s) ``e`` counts in by ``name`` (a stats or attribute name)."""
    a = BY_STATS.get(name) or ATTRS[name]
    assert a.group is not None, name
    return a.group(e)
