"""struct.record: the small stand-in for dataclasses on the start-up path."""

from __future__ import annotations

import pytest

from journal_sendmail.dataclass_lite import field, fields, record, replace


@record
class Box:
    name: str
    items: list[str] = field(default_factory=list)
    size: int = 0


@record(frozen=True)
class Frozen:
    a: int
    b: str = "b"


def test_defaults_and_factories_are_per_instance() -> None:
    one, two = Box("one"), Box("two")
    one.items.append("x")
    assert two.items == [] and one.items == ["x"] and one.size == 0


def test_init_by_position_and_keyword() -> None:
    assert Box("n", ["i"], 3) == Box(name="n", items=["i"], size=3)
    assert Box("n") != Box("m")
    assert repr(Box("n")) == "Box(name='n', items=[], size=0)"


@pytest.mark.parametrize(("args", "kwargs"), [
    pytest.param((), {}, id="missing"),
    pytest.param(("n", [], 0, 1), {}, id="too-many"),
    pytest.param(("n",), {"name": "m"}, id="repeated"),
    pytest.param(("n",), {"colour": "red"}, id="unknown"),
])
def test_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        Box(*args, **kwargs)  # type: ignore[arg-type]


def test_frozen() -> None:
    f = Frozen(1)
    with pytest.raises(AttributeError):
        f.a = 2  # type: ignore[misc]
    assert hash(f) == hash(Frozen(1)) and {f: 1}[Frozen(1)] == 1
    assert replace(f, b="c") == Frozen(1, "c") and f.b == "b"


def test_mutable_records_are_unhashable_and_fields_listed() -> None:
    with pytest.raises(TypeError):
        hash(Box("n"))
    assert fields(Box) == ("name", "items", "size")
