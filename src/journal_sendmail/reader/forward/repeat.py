"""Repeats: a rule's ``group_by`` and ``repeat_interval`` (Alertmanager's names), per destination (pure).

The first mail of a group goes at once and opens the group's window of
``repeat_interval``; the mails of that group within the window are counted,
not sent (they stay in the journal, and in the rule's digest if it has one).
When the window ends with a count, one short summary goes: "N more since …,
last at …" with their MAIL_IDs; the next mail of the group opens a new window.

Windows are in the journal's time of the mails (``__REALTIME_TIMESTAMP``), so a
backlog read after a stop is grouped as it happened; the summary is due by the
forwarder's clock (``now``).  The groups live in the destination's state.json,
written with its cursor: a kill loses no count and counts nothing twice (a
counted mail is not in the delivered list; it is counted again when its entry is
read again, from the same saved cursor).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..render import rfc3339

IDS_KEPT = 20  # MAIL_IDs a summary lists, the newest
GROUPS_MAX = 10_000  # open groups per destination; past it the oldest windows are closed early


def group_key(rule: str, values: list[str]) -> str:
    return json.dumps([rule, *values], ensure_ascii=False)


def within(groups: dict[str, Any], rule: str, values: list[str], interval: float, t: float) -> bool:
    """Is a mail of ``rule`` with group ``values`` at journal time ``t`` (seconds) within its group's open
    window (then it is counted: ``count``), or the first of a new one (sent: ``opened`` once it went)?

    >>> g: dict = {}
    >>> def one(t):
    ...     if within(g, "r", ["h"], 60, t):
    ...         return count(g, "r", ["h"], t, f"m{t}")
    ...     opened(g, "r", ["h"], 60, t)
    ...     return "sent"
    >>> [one(t) for t in (0, 10, 20, 61)], due(g, 61), g[group_key("r", ["h"]) + " closed"]["ids"]
    (['sent', None, None, 'sent'], ['["r", "h"] closed'], ['m10', 'm20'])
    """
    w = groups.get(group_key(rule, values))
    return w is not None and w["start"] - interval <= t < w["until"]


def count(groups: dict[str, Any], rule: str, values: list[str], t: float, mail_id: str) -> None:
    """One more mail in the group's open window (``within`` said so)."""
    w = groups[group_key(rule, values)]
    w["count"] += 1
    w["first"] = t if w["first"] is None else min(w["first"], t)
    w["last"] = t if w["last"] is None else max(w["last"], t)
    w["ids"] = (w["ids"] + [mail_id])[-IDS_KEPT:]


def opened(groups: dict[str, Any], rule: str, values: list[str], interval: float, t: float) -> None:
    """The first mail of a window went at journal time ``t``: the window is open until ``t + interval``;
    the one it replaces keeps its summary, if it has a count."""
    k = group_key(rule, values)
    if k in groups:
        if groups[k]["count"]:
            _close(groups, k)
        else:
            del groups[k]
    groups[k] = {"start": t, "until": t + interval, "count": 0, "ids": [], "first": None, "last": None,
                 "rule": rule, "values": values}
    if len(groups) > GROUPS_MAX:
        oldest = min((x for x in groups if not x.endswith(" closed")), key=lambda x: groups[x]["until"])
        if groups[oldest]["count"]:
            _close(groups, oldest)
        else:
            del groups[oldest]


def _close(groups: dict[str, Any], k: str) -> None:
    """Keep the window of ``k`` for its summary (merged into one still unsent: none is lost)."""
    w = groups.pop(k)
    old = groups.get(k + " closed")
    if old is not None:
        w = dict(old, count=old["count"] + w["count"], ids=(old["ids"] + w["ids"])[-IDS_KEPT:],
                 first=min(old["first"], w["first"]), last=max(old["last"], w["last"]), until=w["until"])
    groups[k + " closed"] = w


def due(groups: dict[str, Any], now: float) -> list[str]:
    """The groups whose summary is due: a closed window with a count, or an open one ended by ``now``."""
    return [k for k, w in groups.items() if w["count"] and (k.endswith(" closed") or now >= w["until"])]


def expire(groups: dict[str, Any], now: float) -> bool:
    """Drop the windows that ended without a count; True if any went."""
    gone = [k for k, w in groups.items() if not w["count"] and now >= w["until"]]
    for k in gone:
        del groups[k]
    return bool(gone)


def summary(w: dict[str, Any], host: str, dest: str) -> tuple[str, str]:
    """The subject and text of a window's summary.

    >>> w = {"start": 0, "until": 60, "count": 2, "ids": ["a", "b"], "first": 10, "last": 20, "rule": "disks",
    ...      "values": ["web3", "smartd", "SMART error"]}
    >>> summary(w, "loghost", "ops")[0]
    '[loghost] rule disks: 2 more since 1970-01-01T00:00:10Z, last at 1970-01-01T00:00:20Z (web3, smartd, SMART error)'
    """
    first, last = rfc3339(int(w["first"] * 1_000_000)), rfc3339(int(w["last"] * 1_000_000))
    what = ", ".join(v or "-" for v in w["values"])
    subject = f"[{host}] rule {w['rule']}: {w['count']} more since {first}, last at {last} ({what})"
    more = w["count"] - len(w["ids"])
    text = (f"journal-mail forward, destination {dest}: rule {w['rule']!r} sent the first mail of this group at "
            f"{rfc3339(int(w['start'] * 1_000_000))} and held back the repeats until "
            f"{rfc3339(int(w['until'] * 1_000_000))} (repeat_interval).\n\n"
            f"group: {what}\n{w['count']} more mail(s), first {first}, last {last}.\n\n"
            "They stay in the journal:\n    journal-mail show " + " ".join(w["ids"])
            + (f" (+{more} more)" if more > 0 else "") + "\n")
    return subject, text


def summary_id(key: str, w: dict[str, Any], dest: str, domain: str) -> str:
    """The same Message-ID for the same summary: one sent again after a kill is known as the same."""
    h = hashlib.sha256("\0".join([key.removesuffix(" closed"), str(w["start"]), dest]).encode(
        "utf-8", "surrogateescape")).hexdigest()
    return f"<repeat.{h[:32]}@{domain}>"
