"""Which code a workflow stage runs: a checksum of the discaflow modules its script imports.

Each rule declares ``params.code = code_version(<its script>)``. Snakemake reruns a job whose params
changed, so a code update reruns exactly the stages whose modules changed, and the stages after
them. The imports are followed through the package (function-level imports included); a module
counts by its syntax tree, so an edit of comments or layout reruns nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    base = PACKAGE.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["discaflow", *parts])


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Names of discaflow modules (and maybe attributes: filtered by the caller) a tree imports. A
    package's ``__init__`` counts by its module-level imports only (its lazy API loads nothing a
    script does not import itself)."""
    out = set()
    for node in (tree.body if is_package else ast.walk(tree)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "discaflow"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] == "discaflow":
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}  # "from discaflow.io import store"
    return out


def _lazy_targets(init_file: Path, name: str) -> set[str]:
    """Modules a package's lazy public API loads for ``name``: an ``_API``-style dict entry
    ``"name": "discaflow.module"``, else every import inside the package's ``__getattr__``."""
    tree = ast.parse(init_file.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == name and isinstance(v, ast.Constant) \
                        and str(v.value).startswith("discaflow."):
                    return {v.value}
    getattr_fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
    module = _module_name(init_file)
    return set().union(*(_imported(f, module, False) for f in getattr_fn)) if getattr_fn else set()


def module_files(script: str | Path) -> list[Path]:
    """The discaflow source files ``script`` imports, directly or through other modules (and lazy
    package APIs), with the ``__init__.py`` of every package on the way (sorted)."""
    todo, files = [Path(script)], set()
    names_done: set[str] = set()

    def add(name: str) -> None:
        if name in names_done:
            return
        names_done.add(name)
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # discaflow, discaflow.io, discaflow.io.store
            f = _module_file(".".join(parts[:k]))
            if f is None:
                parent = _module_file(".".join(parts[: k - 1]))
                if parent is not None and parent.name == "__init__.py":  # an attribute: maybe a lazy one
                    for target in _lazy_targets(parent, parts[k - 1]):
                        add(target)
                return
            if f not in files:
                files.add(f)
                todo.append(f)

    while todo:
        path = todo.pop()
        tree = ast.parse(path.read_text(), filename=str(path))
        inside = PACKAGE in path.resolve().parents
        module = _module_name(path.resolve()) if inside else "__main__"
        for name in sorted(_imported(tree, module, path.name == "__init__.py")):
            add(name)
    return sorted(files)


@functools.lru_cache(maxsize=None)
def code_version(script: str | Path) -> str:
    """12 hex digits that change when the syntax of any module ``script`` imports changes."""
    h = hashlib.sha256()
    for f in module_files(script):
        h.update(str(f.relative_to(PACKAGE)).encode())
        h.update(ast.dump(ast.parse(f.read_text())).encode())
    return h.hexdigest()[:12]
