"""House rules on imports (DESIGN.md, "Layers"), read from the source: the deterministic
layers start no threads, open no sockets, and do not import the service; `binary` sits
below every layer; scp and transaction do not know each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mcnode

SRC = Path(mcnode.__file__).parent
DETERMINISTIC = ("scp", "fbas", "transaction", "crypto")
FORBIDDEN = ("threading", "concurrent", "asyncio", "socket", "multiprocessing", "mcnode.node")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (lazy imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def files(package: str) -> list[Path]:
    found = sorted((SRC / package).rglob("*.py"))
    assert found, package
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", DETERMINISTIC)
def test_deterministic_layers_touch_no_threads_sockets_or_service(package: str) -> None:
    for path in files(package):
        bad = sorted(n for n in imports(path) if any(_under(n, f) for f in FORBIDDEN))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


@pytest.mark.parametrize(("package", "other"), [("scp", "transaction"), ("transaction", "scp")])
def test_scp_and_transaction_do_not_import_each_other(package: str, other: str) -> None:
    for path in files(package):
        bad = sorted(n for n in imports(path) if _under(n, f"mcnode.{other}"))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_binary_imports_nothing_of_mcnode() -> None:
    assert not {n for n in imports(SRC / "binary.py") if _under(n, "mcnode")}
