"""Time specs: points in time and spans as journalctl writes them, in µs."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping

US = 1_000_000


_UNITS = {
    "us": 1, "usec": 1, "µs": 1,
    "ms": 1000, "msec": 1000,
    "s": US, "sec": US, "second": US, "seconds": US,
    "m": 60 * US, "min": 60 * US, "minute": 60 * US, "minutes": 60 * US,
    "h": 3600 * US, "hr": 3600 * US, "hour": 3600 * US, "hours": 3600 * US,
    "d": 86400 * US, "day": 86400 * US, "days": 86400 * US,
    "w": 604800 * US, "week": 604800 * US, "weeks": 604800 * US,
    "M": 2629800 * US, "month": 2629800 * US, "months": 2629800 * US,
    "y": 31557600 * US, "year": 31557600 * US, "years": 31557600 * US,
}  # fmt: skip


_SPAN = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Zµ]*)")


_ABS = re.compile(
    r"(?:(?P<date>\d{4}-\d{1,2}-\d{1,2})(?:[ T]|$))?"
    r"(?:(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?"
)


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_span(text: str, units: Mapping[str, int] = _UNITS) -> int:
    """A time span as systemd writes it, in µs: ``1h 30min``, ``2d``, ``90`` (seconds);
    ``units``: the units it may name (forward.toml's are fewer).

    >>> parse_span("1h 30min"), parse_span("2d"), parse_span("90")
    (5400000000, 172800000000, 90000000)
    """
    pos, total, t = 0, 0.0, text.strip()
    if not t:
        raise ValueError("empty time span")
    while pos < len(t):
        m = _SPAN.match(t, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad time span {text!r}")
        unit = m.group(2) or "s"
        scale = units.get(unit, units.get(unit.lower()) if unit != "M" else None)
        if scale is None:
            raise ValueError(f"unknown time unit {unit!r} in {text!r}")
        total += float(m.group(1)) * scale
        pos = m.end()
        while pos < len(t) and t[pos] == " ":
            pos += 1
    return int(total)


def parse_time(text: str, now: float | None = None) -> int:
    """A point in time in journalctl's formats, in µs since the epoch.

    ``now``, ``today``, ``yesterday``, ``tomorrow``, ``@EPOCH``, ``-1h``,
    ``+30min``, ``2h ago``, ``2026-11-20``, ``2026-11-20 10:00[:00]``,
    ``10:00`` (today), an optional weekday first and ``UTC`` last.

    >>> parse_time("@1795248649.5"), parse_time("-1h", now=7200.0)
    (1795248649500000, 3600000000)
    >>> parse_time("2026-11-20 10:00:01 UTC")
    1795168801000000
    """
    now_s = time.time() if now is None else now
    t = " ".join(text.split())
    low = t.lower()
    if low == "now":
        return int(now_s * US)
    if low.startswith("@"):
        return int(float(low[1:]) * US)
    if low.startswith(("-", "+")):
        span = parse_span(t[1:])
        return int(now_s * US) + (span if t[0] == "+" else -span)
    if low.endswith((" ago", " left")):
        span = parse_span(t.rsplit(" ", 1)[0])
        return int(now_s * US) + (span if low.endswith(" left") else -span)
    utc = low.endswith((" utc", "z"))
    if utc:
        t = t[:-1] if low.endswith("z") else t[:-4]
        low = t.lower()
    lt = time.gmtime(now_s) if utc else time.localtime(now_s)
    day = {"today": 0, "yesterday": -1, "tomorrow": 1}.get(low)
    if day is not None:
        return _to_us((lt.tm_year, lt.tm_mon, lt.tm_mday + day, 0, 0, 0), 0, utc)
    words = t.split(" ", 1)
    if words[0].lower()[:3] in _WEEKDAYS and not words[0][:1].isdigit():
        t = words[1] if len(words) > 1 else ""
    m = _ABS.fullmatch(t.replace("T", " ", 1) if re.match(r"\d{4}-\d+-\d+T", t) else t)
    if not t or m is None or not (m.group("date") or m.group("h")):
        raise ValueError(f"bad time {text!r}: want e.g. 2026-11-20 10:00, today, -1h or @1795248649")
    if m.group("date"):
        y, mo, d = (int(x) for x in m.group("date").split("-"))
    else:
        y, mo, d = lt.tm_year, lt.tm_mon, lt.tm_mday
    h, mi, s = int(m.group("h") or 0), int(m.group("m") or 0), int(m.group("s") or 0)
    frac = int((m.group("f") or "0").ljust(6, "0"))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError(f"bad time {text!r}: a field is out of range")
    return _to_us((y, mo, d, h, mi, s), frac, utc)


def _to_us(fields: tuple[int, int, int, int, int, int], frac: int, utc: bool) -> int:
    tm = (*fields, 0, 0, -1)
    secs = calendar.timegm(tm) if utc else time.mktime(tm)
    return int(secs) * US + frac
