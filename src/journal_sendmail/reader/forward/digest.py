"""Digest: mail collected into buckets, one mail per digest when it is due (pure but for the bucket file)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from typing import Any

from ..entry import MailEntry
from ..render import rfc3339
from .config import Digest
from .rules import Mail, trusted_uid
from .state import own

EXAMPLE_MAX = 1500


def first_due(d: Digest, now: float) -> float:
    """When ``d`` is next due after ``now`` (never ``now`` itself): the next HH:MM (local time), or now + every.

    >>> first_due(Digest("x", ("ops",), every=3600.0), 1000.0)
    4600.0
    """
    if d.every is not None:
        return now + d.every
    assert d.at is not None
    t = dt.datetime.fromtimestamp(now).astimezone()
    due = t.replace(hour=d.at[0], minute=d.at[1], second=0, microsecond=0)
    if due.timestamp() <= now:
        due = (due + dt.timedelta(days=1)).replace(hour=d.at[0], minute=d.at[1])
    return due.timestamp()


def group_values(m: Mail, keys: tuple[str, ...]) -> list[str]:
    e = m.entry
    out = []
    for k in keys:
        if k == "host":
            out.append(e.hostname)
        elif k == "unit":
            out.append(m.unit)
        elif k == "caller":
            out.append(e.caller_comm)
        elif k == "user":
            out.append(str(trusted_uid(e)))
        elif k == "from":
            out.append(e.envelope_from)
        elif k == "to":
            out.append(",".join(e.recipients))
        else:
            out.append(e.subject)
    return out


def item(m: Mail, key: str, keys: tuple[str, ...], body: str, note: str = "") -> dict[str, Any]:
    e: MailEntry = m.entry
    return {"key": key, "group": group_values(m, keys), "time": e.realtime, "mail_id": e.mail_id,
            "host": e.hostname, "uid": e.uid, "subject": e.subject, "example": body[:EXAMPLE_MAX], "note": note}


class Bucket:
    """The mail collected for one digest: ``bucket.jsonl`` (open period), ``sending.jsonl`` (closed, being sent)."""

    def __init__(self, directory: str) -> None:
        self.open_path = os.path.join(directory, "bucket.jsonl")
        self.closed_path = os.path.join(directory, "sending.jsonl")

    def add(self, rec: dict[str, Any]) -> None:
        with open(self.open_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        own(self.open_path, os.path.dirname(self.open_path))

    def close_period(self) -> bool:
        """Move the open bucket to sending; False when there is nothing to send."""
        if os.path.exists(self.closed_path):
            return True
        if not os.path.exists(self.open_path):
            return False
        os.replace(self.open_path, self.closed_path)
        return True

    def closed(self) -> list[dict[str, Any]]:
        out = []
        try:
            with open(self.closed_path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        seen: set[str] = set()
        return [r for r in out if not (r["key"] in seen or seen.add(r["key"]))]  # type: ignore[func-returns-value]

    def sent(self) -> None:
        try:
            os.unlink(self.closed_path)
        except FileNotFoundError:
            pass


def text(d: Digest, recs: list[dict[str, Any]], host: str) -> tuple[str, str]:
    """The digest's subject and text: each group with its count, first and last time, an example and the ids."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault(tuple(r["group"]), []).append(r)
    ordered = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
    subject = f"[{host}] digest {d.name}: {len(recs)} mail(s) in {len(groups)} group(s)"
    lines = [f"journal-mail forward, digest {d.name}: {len(recs)} mail(s), {len(groups)} group(s).", ""]
    for n, (values, rs) in enumerate(ordered, 1):
        rs.sort(key=lambda r: r["time"])
        head = ", ".join(f"{k}={v or '-'}" for k, v in zip(d.group_by, values, strict=True))
        lines.append(f"{n}. {head}")
        lines.append(f"   {len(rs)} mail(s), first {rfc3339(rs[0]['time'])}, last {rfc3339(rs[-1]['time'])}")
        notes = sorted({r["note"] for r in rs if r.get("note")})
        if notes:
            lines.append(f"   ({'; '.join(notes)})")
        for r in rs[: d.examples]:
            lines.append(f"   example, mail {r['mail_id']} ({r['subject']}):")
            lines += ["   | " + x for x in (r["example"].rstrip("\n") or "(empty)").split("\n")[:30]]
        ids = [r["mail_id"] for r in rs]
        shown = " ".join(ids[:20]) + (f" … (+{len(ids) - 20})" if len(ids) > 20 else "")
        lines.append(f"   journal-mail show {shown}")
        lines.append("")
    return subject, "\n".join(lines)


def digest_id(name: str, recs: list[dict[str, Any]], dest: str, domain: str) -> str:
    h = hashlib.sha256("\0".join([name, dest, *(r["key"] for r in recs)]).encode()).hexdigest()
    return f"<digest.{h[:32]}@{domain}>"
