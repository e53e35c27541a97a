"""Quiet hours: ``hours = "Mon-Fri 08:00-20:00"`` in a ``timezone`` (pure).

Inside the hours a mail goes at once; outside, it goes into the rule's (or
destination's) ``quiet_digest``, which is sent when the hours next open.  A
window may span midnight (``"Mon-Fri 22:00-06:00"``: it starts on those days);
several are separated by commas (``"Mon-Fri 08:00-20:00, Sat 10:00-12:00"``).
Hours are judged by the forwarder's clock when it handles the mail, not by the
mail's own time: they are about when to disturb a person.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"\s*([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?\s+([01]?\d|2[0-3]):([0-5]\d)\s*-\s*"
                   r"([01]?\d|2[0-4]):([0-5]\d)\s*")


@dataclass(frozen=True)
class Hours:
    text: str
    spans: tuple[tuple[frozenset[int], int, int], ...]  # weekdays it starts on, start and end minute of the day
    tz: str = ""  # "" : the local time zone

    def _zone(self) -> dt.tzinfo | None:
        return zoneinfo.ZoneInfo(self.tz) if self.tz else None

    def inside(self, t: float) -> bool:
        """Is ``t`` (seconds since the epoch) inside the hours?

        >>> h = parse("Mon-Fri 08:00-20:00", "UTC")
        >>> h.inside(1796256000.0), h.inside(1796256000.0 + 9 * 3600)  # Thu 2026-12-03 00:00, 09:00 UTC
        (False, True)
        """
        local = dt.datetime.fromtimestamp(t, self._zone()) if self.tz else dt.datetime.fromtimestamp(t).astimezone()
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        for days, a, b in self.spans:
            if a < b and day in days and a <= minute < b:
                return True
            if a >= b and ((day in days and minute >= a) or ((day - 1) % 7 in days and minute < b)):
                return True
        return False

    def next_open(self, t: float) -> float:
        """The first minute at or after ``t`` that is inside (a week on if never: no hours at all).

        >>> h = parse("Mon-Fri 08:00-20:00", "UTC")
        >>> dt.datetime.fromtimestamp(h.next_open(1796475600.0), dt.timezone.utc).isoformat()  # Sat 13:00
        '2026-12-07T08:00:00+00:00'
        """
        if self.inside(t):
            return t
        step = 60 - t % 60
        x = t + step
        for _ in range(7 * 24 * 60 + 1):  # minutes of a week: checked coarsely, then exactly
            if self.inside(x):
                return x
            x += 60
        return t + 7 * 86400


def parse(text: str, tz: str = "") -> Hours:
    """``text`` as Hours; ValueError saying what is wrong.

    >>> parse("Mon-Fri 08:00-20:00, sat 10:00-12:00").spans[1]
    (frozenset({5}), 600, 720)
    """
    if tz:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r} (want a name such as Europe/Berlin or UTC)") from None
    spans = []
    for part in text.split(","):
        m = _SPEC.fullmatch(part)
        if not m:
            raise ValueError(f'want such as "Mon-Fri 08:00-20:00", not {part.strip()!r}')
        first, last = m.group(1).lower(), (m.group(2) or m.group(1)).lower()
        if first not in DAYS or last not in DAYS:
            raise ValueError(f"days are {', '.join(d.title() for d in DAYS)}, not {part.strip()!r}")
        i, j = DAYS.index(first), DAYS.index(last)
        days = frozenset(range(i, j + 1)) if i <= j else frozenset([*range(i, 7), *range(0, j + 1)])
        a = int(m.group(3)) * 60 + int(m.group(4))
        b = int(m.group(5)) * 60 + int(m.group(6))
        if b > 24 * 60 or a == b:
            raise ValueError(f"an empty or impossible span: {part.strip()!r}")
        spans.append((days, a, b))
    return Hours(text, tuple(spans), tz)
