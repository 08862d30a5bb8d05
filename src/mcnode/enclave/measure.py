"""The enclave's measurement, its MRENCLAVE: a SHA-256 digest of the exact code the enclave
process runs (what a `.css` signs, `css`).

What is measured: the entry module of the enclave process (`ENTRY`, what `python -m
mcnode.enclave` runs) and every `mcnode` module it imports, at any depth, each package's
`__init__` on the way, and the native extension `mcnode._native` (its file, by path). The
set is read from the sources' import statements, lazy imports inside functions included
(they are code the process may run), so it is a superset of what `sys.modules` holds once
the entry module is imported (a test holds it to that). Only `mcnode`'s own files are
measured: the interpreter, third-party packages (`cryptography`, `lmdb`, ...) and the
bytecode caches Python runs instead of an unchanged source (`__pycache__`) are not, so a
change there goes unseen. That is a limit of the simulation: SGX's MRENCLAVE covers the
whole enclave image, its runtime included.

Digest, over canonical bytes (`mcnode.binary`, little-endian):

    SHA-256( DOMAIN || u32 n || entry_1 || ... || entry_n )
    entry := u32 len(name) || name (UTF-8) || u64 len(file) || file bytes

with entries in sorted module-name order. Names, not paths: the same files installed
elsewhere measure the same, and any change to one byte of one measured file changes it.

Rules of this file: it reads files and nothing else; deterministic. The files of the tree
it measures are only read, never imported: measuring a copy (tests, tools) runs none of it.
"""

from __future__ import annotations

import ast
import hashlib
from importlib.machinery import EXTENSION_SUFFIXES, SOURCE_SUFFIXES
from pathlib import Path

from mcnode import binary

#: The module `python -m mcnode.enclave` runs: where the measured import closure starts.
ENTRY = "mcnode.enclave.__main__"
PACKAGE = "mcnode"
DOMAIN = b"mcnode enclave measurement v1"
MEASUREMENT_BYTES = 32
_MAX_NAME = 255
# The import system's order: an extension module wins over a source file of the same name.
_SUFFIXES = (*EXTENSION_SUFFIXES, *SOURCE_SUFFIXES)


class MeasureError(Exception):
    """The code to measure cannot be read (a module the enclave imports is missing)."""


def package_root() -> Path:
    """The directory of the installed `mcnode` package (the code this process runs)."""
    import mcnode

    return Path(mcnode.__file__).parent


def measure(root: Path | None = None) -> bytes:
    """The 32-byte measurement of the enclave code under `root`, the directory of an
    `mcnode` package (default: the one this process runs)."""
    h = hashlib.sha256(DOMAIN)
    modules = measured_modules(root)
    h.update(len(modules).to_bytes(4, "little"))
    for name, path in modules:
        data = path.read_bytes()
        w = binary.Writer()
        w.var(name.encode(), _MAX_NAME, width=4, what="module name")
        w.u64(len(data))
        h.update(w.getvalue())
        h.update(data)
    return h.digest()


def measured_modules(root: Path | None = None) -> list[tuple[str, Path]]:
    """(module name, file) of every module measured, in sorted name order."""
    root = package_root() if root is None else Path(root)
    found: dict[str, Path] = {}
    todo = [ENTRY]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _find(root, name)
        if path is None:
            raise MeasureError(f"{root}: module {name} is imported but not found")
        found[name] = path
        todo += _parents(name)
        if path.suffix == ".py":
            for module, candidates in _imports(path, name, is_package=path.stem == "__init__"):
                todo.append(module)
                # `from package import name`: a submodule when there is one by that name.
                todo += [c for c in candidates if _find(root, c) is not None]
    return sorted(found.items())


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _find(root: Path, name: str) -> Path | None:
    """The file the import system would load for module `name` from the tree at `root`."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if base.is_dir():
        for suffix in _SUFFIXES:
            init = base / f"__init__{suffix}"
            if init.is_file():
                return init
    for suffix in _SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str, *, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, [module.attribute, ...]) for every import of an `mcnode` module in the
    file of module `name`, at any depth of its code."""
    out: list[tuple[str, list[str]]] = []
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except SyntaxError as e:
        raise MeasureError(f"{path}: not Python source: {e.msg}") from e
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if _ours(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if _ours(module):
                out.append((module, [f"{module}.{a.name}" for a in node.names if a.name != "*"]))
    return out


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")
