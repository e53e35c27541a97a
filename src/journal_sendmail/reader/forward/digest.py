"""Digest: mail collected into buckets, sent when due as one mail or as several of a bounded size
(pure but for the bucket file)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import threading
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from .. import attrs
from ..entry import MailEntry
from ..render import rfc3339
from .compose import clean
from .config import DIGEST_MIN_SIZE, Digest
from .rules import Mail
from .state import lines, private_append, replace

EXAMPLE_MAX = 1500  # characters of a mail's text kept as its example
EXAMPLE_LINE = 300  # characters of one line of an example
GROUP_VALUE_MAX = 200  # characters of a group value (a subject)
IDS_SHOWN = 20  # MAIL_IDs listed per group, the newest; then "(+N more)"
GROUPS_PER_MAIL = 100  # groups in one digest mail; more: the digest is sent in several mails
CHAT_PARTS = 3  # messages of one digest to a chat (ntfy, Slack): a notification, not the record
EXAMPLES_PER_GROUP = 10  # records of one group that keep their example text (examples is at most 10)
BUCKET_MAX = 20_000  # records of an open bucket before it is compacted ...
BUCKET_KEEP = 10_000  # ... to about this many
PART_MIN = DIGEST_MIN_SIZE  # bytes: the smallest digest mail a 552 makes it split into


def first_due(d: Digest, now: float) -> float:
    """When ``d`` is next due after ``now`` (never ``now`` itself): the next HH:MM (local time), or now + every.

    >>> first_due(Digest("x", ("ops",), every=3600.0), 1000.0)
    4600.0
    """
    if d.every is not None:
        return now + d.every
    if d.at is None:
        return math.inf  # a quiet_digest of its own: sent only when the hours open
    t = dt.datetime.fromtimestamp(now).astimezone()
    due = t.replace(hour=d.at[0], minute=d.at[1], second=0, microsecond=0)
    if due.timestamp() <= now:
        due = (due + dt.timedelta(days=1)).replace(hour=d.at[0], minute=d.at[1])
    return due.timestamp()


def group_values(m: Mail, keys: tuple[str, ...]) -> list[str]:
    return [",".join(attrs.group(m.entry, k)) for k in keys]


def item(m: Mail, key: str, keys: tuple[str, ...], body: str, note: str = "") -> dict[str, Any]:
    e: MailEntry = m.entry
    return {"key": key, "group": [clean(v)[:GROUP_VALUE_MAX] for v in group_values(m, keys)], "time": e.realtime,
            "mail_id": clean(e.mail_id)[:64], "host": e.hostname, "uid": e.uid, "subject": clean(e.subject)[:200],
            "example": body[:EXAMPLE_MAX], "note": note}


def _gkey(rec: dict[str, Any]) -> str:
    return json.dumps(rec["group"], ensure_ascii=False)


class Bucket:
    """The mail collected for one digest: ``bucket.jsonl`` (open period), ``sending.jsonl`` (closed, being sent).

    Bounded: only the first EXAMPLES_PER_GROUP records of a group keep their
    example text, and past BUCKET_MAX records the open bucket is compacted (``compact``): every
    group keeps its first record and the newest records stay, the others are
    counted in one tally per group, so that a flood of forged mail neither
    fills the disk nor pushes a genuine alert out of sight.  One lock: the
    digest's worker and an overflowing destination's worker both add.
    """

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.open_path = os.path.join(directory, "bucket.jsonl")
        self.closed_path = os.path.join(directory, "sending.jsonl")
        self.lock = threading.Lock()
        self._count: int | None = None  # records in the open bucket
        self._examples: Counter[str] = Counter()  # its records with an example, by group

    def add(self, rec: dict[str, Any]) -> None:
        with self.lock:
            if self._count is None:
                self._recount(_read(self.open_path))
                assert self._count is not None
            g = _gkey(rec)
            if self._examples[g] >= EXAMPLES_PER_GROUP:
                rec = {k: v for k, v in rec.items() if k != "example"}
            else:
                self._examples[g] += 1
            with private_append(self.open_path) as f:
                f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape"))
            self._count += 1
            if self._count >= BUCKET_MAX:
                self._compact()

    def _compact(self) -> None:
        recs = _read(self.open_path)
        kept = compact(recs, BUCKET_KEEP)
        replace(self.dir, "bucket.jsonl", b"".join(
            (json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape") for r in kept))
        self._recount(kept)

    def _recount(self, recs: list[dict[str, Any]]) -> None:
        self._count = len(recs)
        self._examples = Counter(_gkey(r) for r in recs if "example" in r)

    def close_period(self) -> bool:
        """Move the open bucket to sending; False when there is nothing to send."""
        with self.lock:
            if os.path.exists(self.closed_path):
                return True
            if not os.path.exists(self.open_path):
                return False
            os.replace(self.open_path, self.closed_path)
            self._recount([])
            return True

    def closed(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for r in _read(self.closed_path):
            if "tally" not in r:
                if r["key"] in seen:
                    continue
                seen.add(r["key"])
            out.append(r)
        return out

    def sent(self) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.closed_path)


def _read(path: str) -> list[dict[str, Any]]:
    out = []
    for line in lines(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash
    return out


def compact(recs: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """At most about ``keep`` records for ``recs``: the newest ``keep // 2`` records and every group's
    first one stay (the newest groups first, up to ``keep // 2`` groups); each group's other records
    become its tally (a count and a first and last time), groups left out one tally of their own.

    >>> recs = [{"key": str(i), "group": ["a" if i < 90 else str(i)], "time": i} for i in range(100)]
    >>> out = compact(recs, 20)
    >>> len(out), sum(r.get("tally", 1) for r in out), [r["key"] for r in out if r["group"] == ["99"]]
    (11, 100, ['99'])
    """
    keep_groups: dict[str, int] = {}
    for i in range(len(recs) - 1, -1, -1):  # newest groups first
        g = _gkey(recs[i])
        if g in keep_groups:
            keep_groups[g] = i  # ends as its first record
        elif len(keep_groups) < keep // 2:
            keep_groups[g] = i
    firsts = set(keep_groups.values())
    newest = set(range(max(0, len(recs) - keep // 2), len(recs)))
    out: list[dict[str, Any]] = []
    tallies: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(recs):
        if i in firsts or i in newest:
            out.append(r)
            continue
        g = _gkey(r) if _gkey(r) in keep_groups else json.dumps(["(more groups)"] * len(r["group"]))
        n = r.get("tally", 1)
        t = tallies.get(g)
        first, last = r.get("first", r["time"]), r.get("last", r["time"])
        if t is None:
            tallies[g] = {"key": f"tally {g}", "group": json.loads(g), "tally": n, "time": first, "first": first,
                          "last": last}
        else:
            t["tally"] += n
            t["first"], t["last"] = min(t["first"], first), max(t["last"], last)
    return out + list(tallies.values())


def _group_block(d: Digest, n: int, values: tuple[str, ...], rs: list[dict[str, Any]], examples: int) -> str:
    items = sorted((r for r in rs if "tally" not in r), key=lambda r: r["time"])
    count = sum(r.get("tally", 1) for r in rs)
    first = min(r.get("first", r["time"]) for r in rs)
    last = max(r.get("last", r["time"]) for r in rs)
    head = ", ".join(f"{k}={v or '-'}" for k, v in zip(d.group_by, values, strict=False))
    lines = [f"{n}. {head}", f"   {count} mail(s), first {rfc3339(first)}, last {rfc3339(last)}"]
    notes = sorted({r["note"] for r in items if r.get("note")})
    if notes:
        lines.append(f"   ({'; '.join(notes)})")
    for r in [r for r in items if "example" in r][:examples]:
        lines.append(f"   example, mail {r['mail_id']} ({r['subject']}):")
        lines += ["   | " + x[:EXAMPLE_LINE] for x in (r["example"].rstrip("\n") or "(empty)").split("\n")[:30]]
    ids = [r["mail_id"] for r in items]
    more = count - min(len(ids), IDS_SHOWN)
    lines.append("   journal-mail show " + " ".join(ids[-IDS_SHOWN:]) + (f" (+{more} more)" if more > 0 else ""))
    lines.append("")
    return "\n".join(lines) + "\n"


def groups(recs: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], list[dict[str, Any]]]]:
    """The records by group, the biggest group first: (group key, values, records)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by.setdefault(_gkey(r), []).append(r)
    ordered = sorted(by.items(), key=lambda g: (-sum(r.get("tally", 1) for r in g[1]), g[0]))
    return [(k, tuple(rs[0]["group"]), rs) for k, rs in ordered]


@dataclass(frozen=True)
class Part:
    """One digest mail: its subject, text, and the groups (keys) and records it covers."""

    subject: str
    text: str
    group_keys: tuple[str, ...]
    keys: tuple[str, ...]


def parts(d: Digest, recs: list[dict[str, Any]], host: str, max_bytes: int, skip: frozenset[str] = frozenset(),
          chat: bool = False) -> list[Part]:
    """The digest as mails of at most ``max_bytes`` bytes of text and GROUPS_PER_MAIL groups each (a
    group is never split: its block is bounded), leaving out the groups in ``skip`` (already sent).

    ``chat``: for a chat, which is a notification and not the record, no examples and at most
    CHAT_PARTS messages, the last one saying how many groups it leaves out (marked sent with it).
    """
    all_groups = groups(recs)
    total = sum(r.get("tally", 1) for r in recs)
    todo = [(i, g) for i, g in enumerate(all_groups, 1) if g[0] not in skip]
    chunks: list[list[tuple[str, str, list[dict[str, Any]]]]] = []
    size = 0
    for n, (k, values, rs) in todo:
        block = _group_block(d, n, values, rs, 0 if chat else d.examples)
        b = len(block.encode("utf-8", "replace"))
        if not chunks or size + b > max_bytes - 400 or len(chunks[-1]) >= GROUPS_PER_MAIL:
            chunks.append([])
            size = 0
        chunks[-1].append((k, block, rs))
        size += b
    left: list[tuple[str, str, list[dict[str, Any]]]] = []
    if chat and len(chunks) > CHAT_PARTS:
        left = [x for c in chunks[CHAT_PARTS:] for x in c]
        chunks = chunks[:CHAT_PARTS]
    out = []
    for i, chunk in enumerate(chunks, 1):
        of = f" (part {i} of {len(chunks)})" if len(chunks) > 1 else ""
        subject = f"[{host}] digest {d.name}: {total} mail(s) in {len(all_groups)} group(s){of}"
        head = f"journal-mail forward, digest {d.name}: {total} mail(s), {len(all_groups)} group(s){of}.\n\n"
        body = "".join(b for _, b, _ in chunk)
        if left and i == len(chunks):
            chunk = chunk + left
            body += (f"(+{len(left)} more group(s), {sum(r.get('tally', 1) for _, _, rs in left for r in rs)} "
                     f"mail(s), not shown here: journal-mail list on {host})\n")
        out.append(Part(subject, head + body, tuple(k for k, _, _ in chunk),
                        tuple(r["key"] for _, _, rs in chunk for r in rs)))
    return out


def digest_id(name: str, keys: tuple[str, ...] | list[str], dest: str, domain: str) -> str:
    h = hashlib.sha256("\0".join([name, dest, *keys]).encode("utf-8", "surrogateescape")).hexdigest()
    return f"<digest.{h[:32]}@{domain}>"
