"""Expectations: the mail that did not come (``[[expect]]``), judged per host (pure).

Every host that has sent a matching mail (and every host listed in ``hosts``)
must send one per ``every``; when a host's is ``grace`` late, one "missing"
notice goes to the ``route``, and one "resolved" when a matching mail comes
again.

When was a mail seen?  On a log host ``__REALTIME_TIMESTAMP`` is the sending
host's own clock (systemd-journal-remote keeps it), which may be wrong, and a
host may upload hours late.  So a mail counts as seen at its own time only
where that is possible: not before the previous pass of the forwarder began
(the entry was not in the journal then, or that pass would have read it), not
after now.  ``seen_at`` clamps it into that interval.  A clock that is behind,
or an upload that comes late, counts as seen when it reached the log host (a
late upload of a host that was missing resolves it then: the log host did not
have its mail before); a clock that is ahead counts as now; a backlog read
after the forwarder was stopped keeps each mail's own time, within the stop.
Deadlines are by the forwarder's clock only.

The state (per host: seen at, its claimed time, its MAIL_ID, and what each
destination was last told) is saved with the cursors; a notice sent is saved
at once, so a kill repeats at most that notice, with the same Message-ID.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..render import rfc3339

SKEW_SHOWN = 60.0  # seconds: a host's clock this far from the log host's is mentioned


def seen_at(claimed: float, floor: float | None, now: float) -> float:
    """When a matching mail counts as seen: its own time, clamped to [floor, now].

    >>> seen_at(100.0, 50.0, 200.0), seen_at(10.0, 50.0, 200.0), seen_at(900.0, 50.0, 200.0), seen_at(10.0, None, 9)
    (100.0, 50.0, 200.0, 9)
    """
    lo = claimed if floor is None else max(claimed, floor)
    return min(lo, now)


def observe(hosts: dict[str, Any], host: str, claimed: float, at: float, mail_id: str) -> None:
    rec = hosts.setdefault(host, {"told": {}})
    if rec.get("at") is None or at >= rec["at"]:
        rec.update(at=at, claimed=claimed, mail_id=mail_id)


def first_pass(rec0: dict[str, Any], name: str, now: float) -> float:
    """When expectation ``name`` first ran (``state``'s ``started``): its own first pass, so that one added to
    a running forwarder does not take its listed hosts for missing at once (a start shared by every
    expectation did; the shared one of an older state is dropped, which only delays, never adds, a notice).

    >>> rec0 = {"started": 0.0}
    >>> first_pass(rec0, "backup", 100.0), first_pass(rec0, "backup", 200.0), first_pass(rec0, "smart", 300.0)
    (100.0, 100.0, 300.0)
    >>> rec0
    {'starts': {'backup': 100.0, 'smart': 300.0}}
    """
    rec0.pop("started", None)
    starts: dict[str, float] = rec0.setdefault("starts", {})
    return starts.setdefault(name, now)


def state(rec: dict[str, Any], now: float, every: float, grace: float, started: float) -> str:
    """``"missing"`` when the host's mail is more than ``every + grace`` overdue, else ``"ok"``; never
    before ``every + grace`` after the expectation's first pass (``started``): the times of what it read
    then are the hosts' own word only.

    >>> state({"at": 0.0}, 89.0, 60.0, 30.0, 0.0), state({"at": 0.0}, 91.0, 60.0, 30.0, 0.0)
    ('ok', 'missing')
    >>> state({}, 91.0, 60.0, 30.0, 0.0)  # listed, never seen: counted from the first start
    'missing'
    >>> state({"at": -7200.0}, 60.0, 60.0, 30.0, 0.0)  # an old mail read at the first start
    'ok'
    """
    base = rec.get("at")
    base = started if base is None else max(base, started)
    return "missing" if now > base + every + grace else "ok"


def to_tell(rec: dict[str, Any], now_state: str, route: tuple[str, ...]) -> list[str]:
    """The destinations that must hear of ``now_state``: "missing" those not told it yet, "resolved" those
    told "missing" (a host that was never missing for a destination is not resolved to it)."""
    told = rec.setdefault("told", {})
    return [d for d in route if told.get(d, "ok") != now_state]


def notice(name: str, host: str, rec: dict[str, Any], now_state: str, every: float, grace: float,
           loghost: str) -> tuple[str, str]:
    """The subject and text of a "missing" or "resolved" notice.

    >>> notice("backup", "web3", {"at": 0.0, "claimed": 0.0, "mail_id": "ab"}, "missing", 86400, 7200, "lh")[0]
    '[lh] expected backup from web3, last seen 1970-01-01T00:00:00Z'
    """
    at = rec.get("at")
    last = "never" if at is None else rfc3339(int(at * 1_000_000))
    if now_state == "missing":
        subject = f"[{loghost}] expected {name} from {host}, last seen {last}"
        head = (f"journal-mail forward: expectation {name!r} wants a matching mail from {host} every "
                f"{every:.0f} s ({grace:.0f} s of grace); none came since {last}.")
    else:
        subject = f"[{loghost}] resolved: {name} from {host} came again at {last}"
        head = f"journal-mail forward: expectation {name!r}: {host} sent its mail again at {last}."
    lines = [head, ""]
    if at is not None:
        lines.append(f"last mail: {rec.get('mail_id', '-')} (journal-mail show {rec.get('mail_id', '')})")
        claimed = rec.get("claimed")
        if claimed is not None and abs(claimed - at) > SKEW_SHOWN:
            lines.append(f"its own time said {rfc3339(int(claimed * 1_000_000))} (a clock off, or a late upload: "
                         f"counted as seen when it reached {loghost})")
    return subject, "\n".join(lines) + "\n"


def notice_id(name: str, host: str, now_state: str, rec: dict[str, Any], dest: str, domain: str) -> str:
    h = hashlib.sha256("\0".join([name, host, now_state, str(rec.get("at")), dest]).encode(
        "utf-8", "surrogateescape")).hexdigest()
    return f"<expect.{h[:32]}@{domain}>"
