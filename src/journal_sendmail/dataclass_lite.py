"""Record classes without the dataclasses module.

``dataclasses`` imports ``inspect`` (and with it ast, dis, tokenize) and
``typing``: ~16 ms here, more than the interpreter's own start-up, and
every cron mail pays start-up.  ``record`` covers what this program uses:
typed fields with defaults, ``field(default_factory=...)``, an __init__ by
position or keyword, __repr__, __eq__, frozen instances and ``replace``.
Type checkers see it as a dataclass (PEP 681).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
    C = TypeVar("C", bound=type)
else:

    def dataclass_transform(**kw):
        return lambda f: f


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: "Callable[[], Any]") -> None:
        self.make = make


def field(*, default_factory: "Callable[[], T]") -> "T":
    """A mutable default: ``x: list[str] = field(default_factory=list)``."""
    return _Factory(default_factory)  # type: ignore[return-value]


@dataclass_transform(field_specifiers=(field,))
def record(cls: "C | None" = None, *, frozen: bool = False) -> "Any":
    """Make ``cls`` a record of its annotated fields (``frozen=True``: immutable).

    >>> @record(frozen=True)
    ... class Point:
    ...     x: int
    ...     y: int = 2
    >>> Point(1), Point(1) == Point(1, 2), replace(Point(1), y=3)
    (Point(x=1, y=2), True, Point(x=1, y=3))
    """

    def wrap(cls: "C") -> "C":
        # The class's own annotations, in order.  Python 3.14 (PEP 649) no longer keeps them in
        # the class's __dict__ for a module without "from __future__ import annotations" (the
        # sender's modules, for their start-up): there they are evaluated when asked for.
        own = cls.__dict__.get("__annotations__")  # noqa: RUF063 - no inspect, no annotationlib
        if own is None:
            own = cls.__annotations__
        names = tuple(n for n in own if not n.startswith("_"))
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

        def __init__(self: "Any", *args: "Any", **kw: "Any") -> None:
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes at most {len(names)} positional arguments")
            values = dict(zip(names, args, strict=False))
            for key, value in kw.items():
                if key not in names or key in values:
                    raise TypeError(f"{cls.__name__}() got an unexpected or repeated argument {key!r}")
                values[key] = value
            for name in names:
                if name not in values:
                    if name not in defaults:
                        raise TypeError(f"{cls.__name__}() missing argument {name!r}")
                    d = defaults[name]
                    values[name] = d.make() if isinstance(d, _Factory) else d
                object.__setattr__(self, name, values[name])

        def __repr__(self: "Any") -> str:
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{cls.__name__}({inner})"

        def __eq__(self: "Any", other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        def __setattr__(self: "Any", name: str, value: "Any") -> None:
            raise AttributeError(f"{cls.__name__} is frozen: cannot set {name}")

        def __hash__(self: "Any") -> int:
            return hash(tuple(getattr(self, n) for n in names))

        methods: dict[str, Any] = {"__init__": __init__, "__repr__": __repr__, "__eq__": __eq__}
        methods.update(__match_args__=names, __record_fields__=names)
        methods.update({"__setattr__": __setattr__, "__hash__": __hash__} if frozen else {"__hash__": None})
        for name, value in methods.items():
            setattr(cls, name, value)
        return cls

    return wrap if cls is None else wrap(cls)


def replace(obj: "T", **changes: "Any") -> "T":
    """A copy of the record ``obj`` with some fields changed."""
    names = obj.__class__.__record_fields__  # type: ignore[attr-defined]
    return obj.__class__(**{n: changes.pop(n) if n in changes else getattr(obj, n) for n in names}, **changes)


def fields(cls: type) -> tuple[str, ...]:
    """The field names of a record class, in order."""
    return cls.__record_fields__  # type: ignore[attr-defined, no-any-return]
