"""The project's own source files that a module runs: its import closure, read from the code.

Imports are read with :mod:`ast` wherever they appear (top level or inside a
function, where heavy libraries are imported late), so the closure covers every
file whose edit can change what the module does. Only the project's packages
(:data:`PACKAGES`) are followed; a submodule brings its packages' ``__init__``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGES = ("ser", "stages")
"""Top-level packages of the project, resolved under :data:`ROOT`."""
ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the packages (the project root in a checkout)."""


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of ``module`` under ``root`` (a package's ``__init__.py``), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def imported_modules(module: str, path: Path) -> set[str]:
    """Names of the modules that ``module`` (source ``path``) may import, parents included.

    ``from package import name`` yields ``package`` and ``package.name`` (which
    may be an attribute rather than a module: callers keep the names that have files).
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module, path).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {parent for name in names if name.split(".")[0] in PACKAGES for parent in _with_parents(name)}


@functools.cache
def closure(module: str, root: Path = ROOT) -> tuple[Path, ...]:
    """Every project source file that importing ``module`` can run, ``module``'s own first, the rest sorted."""
    start = module_file(module, root)
    if start is None:
        raise ModuleNotFoundError(f"{module}: no source file under {root}")
    found: dict[str, Path] = {}
    pending = [parent for parent in _with_parents(module)]
    while pending:
        name = pending.pop()
        if name in found or (path := module_file(name, root)) is None:
            continue
        found[name] = path
        pending.extend(imported_modules(name, path) - found.keys())
    return (start, *sorted(set(found.values()) - {start}))


def relative_closure(module: str, root: Path = ROOT) -> list[str]:
    """:func:`closure` as POSIX paths relative to ``root``, sorted (as ``dvc.yaml`` lists them)."""
    return sorted(path.relative_to(root).as_posix() for path in closure(module, root))
