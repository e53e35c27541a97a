"""Rules: which [[rule]] decides a mail, and what it decides (pure).

``user`` and ``uid`` come from journald's trusted ``_UID`` only (for a mail
that root's spool flusher re-injected, from the ``MAIL_SPOOL_UID`` root wrote),
``unit`` from journald's ``_SYSTEMD_UNIT`` only (``caller_unit`` is the
sender's MAIL_CALLER_UNIT, and ``caller`` its MAIL_CALLER_COMM: claims):
an entry any local user forges on the journal socket carries that user's
``_UID``, whatever its fields say.  A damaged entry (forged or corrupt, see
``entry``) matches no rule at all.  Refused submissions match only a rule that
asks for them with ``kind = "refused"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .. import attrs
from ..attrs import trusted_uid as trusted_uid
from ..entry import MailEntry
from .config import Pattern, Rule


@dataclass(frozen=True)
class Mail:
    """A mail as the rules see it: its entry (keys: ``attrs``), and whether we sent it."""

    entry: MailEntry
    forwarded: bool = False  # carries X-Journal-Mail-Forwarded (loop guard)


@dataclass(frozen=True)
class Decision:
    rules: tuple[str, ...] = ()  # the rules that matched, in order
    route: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    dropped: bool = False
    why: str = ""  # when no rule could match: damaged, forwarded


def values(m: Mail, key: str, body: Callable[[], str]) -> Iterable[str]:
    return (body(),) if key == "body" else attrs.values(m.entry, key)


def _one(p: Pattern, value: str) -> bool:
    if p.text.startswith("/") and p.text.endswith("/") and len(p.text) >= 2:
        return p.regex.search(value) is not None
    return p.regex.fullmatch(value) is not None


def matches(rule: Rule, m: Mail, body: Callable[[], str]) -> bool:
    """Every key of the rule's match holds (each: any of its patterns on any of the mail's values)."""
    keys = {k for k, _ in rule.match}
    if m.entry.kind != "mail" and "kind" not in keys:
        return False
    for key, pats in rule.match:
        if not any(_one(p, v) for v in values(m, key, body) for p in pats):
            return False
    return True


def decide(rules: Iterable[Rule], m: Mail, body: Callable[[], str]) -> Decision:
    """What the rules decide for ``m``: the first rule that matches, and those before it with continue."""
    if m.entry.damaged:
        return Decision(why=f"damaged: {m.entry.damaged}")
    if m.forwarded:
        return Decision(why="already forwarded (X-Journal-Mail-Forwarded)")
    names: list[str] = []
    route: list[str] = []
    digests: list[str] = []
    for rule in rules:
        if not matches(rule, m, body):
            continue
        names.append(rule.name)
        if rule.drop:
            return Decision(tuple(names), tuple(dict.fromkeys(route)), tuple(dict.fromkeys(digests)), dropped=True)
        route += rule.route
        if rule.digest:
            digests.append(rule.digest)
        if not rule.cont:
            break
    return Decision(tuple(names), tuple(dict.fromkeys(route)), tuple(dict.fromkeys(digests)))
