"""The layout holds: imports in src/ run one way (no circle), the sender
never imports the reader wing, and the reader takes from the sender only the
shared pieces it names here: the contract between the wings is schema.py."""

from __future__ import annotations

import ast
from pathlib import Path

from kit.support import SRC

PACKAGE = "journal_sendmail"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at the top or inside functions."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith(PACKAGE):
                continue
            for alias in node.names:  # "from . import x" names a module; "from .x import y" does not
                found.add(f"{base}.{alias.name}" if (SRC / f"{base}.{alias.name}".replace(".", "/")).with_suffix(
                    ".py").exists() or (SRC / f"{base}.{alias.name}".replace(".", "/")).is_dir() else base)
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (as a path that comes back to its start).

    >>> cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    [['a', 'b', 'c', 'a']]
    """
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    return found


def test_the_graph_sees_the_pipeline() -> None:
    g = graph()
    assert f"{PACKAGE}.deliver" in g[f"{PACKAGE}.flush"] and f"{PACKAGE}.spool" in g[f"{PACKAGE}.deliver"]
    assert f"{PACKAGE}.reader.query" in g[f"{PACKAGE}.reader.commands"]


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_sender_never_imports_the_reader() -> None:
    reader = f"{PACKAGE}.reader"
    for module, imported in graph().items():
        if not module.startswith(reader):
            assert not {m for m in imported if m.startswith(reader)}, module


# The sender's modules the reader wing may import, and why.  Anything else of the
# sender's (its encoder's constants, its parser's internals) is not the reader's.
READER_MAY_IMPORT = {
    PACKAGE: "__version__",
    f"{PACKAGE}.schema": "the contract: message ids, field names, limits, header table, copy key",
    f"{PACKAGE}.errors": "exit codes and the error classes both wings raise",
    f"{PACKAGE}.users": "uid <-> login name",
    f"{PACKAGE}.printable": "control characters made harmless",
    f"{PACKAGE}.body": "the readable body of a mail",
    f"{PACKAGE}.headers": "the header parser (a mail's header block, as the sender read it)",
    f"{PACKAGE}.message": "write_all",
    f"{PACKAGE}.journal": "the native-protocol socket (the forwarder's events)",
    f"{PACKAGE}.record": "encode only (the forwarder's events)",
}


def test_the_reader_imports_only_the_senders_shared_modules() -> None:
    reader = f"{PACKAGE}.reader"
    for module, imported in graph().items():
        if module.startswith(reader):
            sender = {m for m in imported if not m.startswith(reader)}
            assert sender <= set(READER_MAY_IMPORT), (module, sorted(sender - set(READER_MAY_IMPORT)))


def test_the_reader_takes_only_encode_from_record() -> None:
    """Message ids, field names and limits come from schema.py, never from the encoder."""
    for path in sorted((SRC / PACKAGE / "reader").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("record"):
                assert {a.name for a in node.names} <= {"encode"}, path


def test_schema_imports_nothing_of_the_package() -> None:
    """Both wings import it; it imports neither (and nothing that costs the cron path)."""
    tree = ast.parse((SRC / PACKAGE / "schema.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or n.module == PACKAGE)]
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)]


def test_every_message_id_is_defined_once_in_schema() -> None:
    """No module but schema.py names a message id (a 32-hex-digit constant) of its own."""
    found = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and len(node.value.value) == 32 \
                    and not node.value.value.strip("0123456789abcdef"):
                found.append(path.name)
    assert found == ["schema.py"] * 8, found  # ours six, systemd's two
