"""Prefilter: many match tables (silences, expectations) tried on a mail only where they can match (pure).

Each table is filed under its first cheap key whose pattern is one literal
value (a glob without ``*`` or ``?``: any case); a mail looks up its own
values of those keys, and only the tables found there, and those with no such
key, are matched in full.  A hundred silences or expectations that each name
a host or a unit then cost a few dictionary lookups per mail, not a hundred
matches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .config import Rule
from .rules import Mail, matches, values

T = TypeVar("T")
CHEAP = ("host", "unit", "user", "uid", "caller", "caller_unit", "kind")  # not body: it must be read


def literal(pattern: str) -> str | None:
    """The one value a glob matches (case-folded: the glob is any case), or None.

    >>> literal("Web3"), literal("web*"), literal("/web3/")
    ('web3', None, None)
    """
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return None
    return None if any(c in pattern for c in "*?") else pattern.casefold()


class Prefilter(Generic[T]):
    def __init__(self, items: list[tuple[T, Rule]]) -> None:
        self.by: dict[str, dict[str, list[tuple[T, Rule]]]] = {}
        self.rest: list[tuple[T, Rule]] = []
        for item, rule in items:
            for key, pats in rule.match:
                lit = literal(pats[0].text) if key in CHEAP and len(pats) == 1 else None
                if lit is not None:
                    self.by.setdefault(key, {}).setdefault(lit, []).append((item, rule))
                    break
            else:
                self.rest.append((item, rule))

    def matching(self, m: Mail, body: Callable[[], str]) -> Iterator[T]:
        """Every item whose table matches ``m``."""
        for key, table in self.by.items():
            for v in set(values(m, key, body)):
                for item, rule in table.get(v.casefold(), ()):
                    if matches(rule, m, body):
                        yield item
        for item, rule in self.rest:
            if matches(rule, m, body):
                yield item
