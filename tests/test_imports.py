"""The package's import rules (issue #30; docs/architecture.md): bigseg's own modules are imported at module
level, so that the import graph lint-imports checks is the real one, except where the imported module is heavy
(it pulls in torch, torchvision, onnxruntime, onnx, pyvips, distributed or matplotlib) or the import says why it
waits (``# lazy: reason``); and the command line starts without loading any of them."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bigseg"
HEAVY = {"torch", "torchvision", "onnxruntime", "onnx", "pyvips", "distributed", "matplotlib"}
# start-up paths whose imports are all deferred on purpose: the console script, the click commands (each command
# imports its verb when it runs), and the package inits that load their parts on first attribute access
DEFERRING = {"bigseg.entry", "bigseg.cli", "bigseg", "bigseg.infer"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads (for ``from X import y``: X, and X.y where y is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        if MODULES[module].name != "__init__.py":
            parts = parts[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]


def _imports(module: str) -> tuple[set[str], list[tuple[ast.Import | ast.ImportFrom, str]]]:
    """(what the module imports when it is imported, [(import statement inside a function, its source line)])."""
    source = MODULES[module].read_text()
    lines = source.splitlines()
    top: set[str] = set()
    inner: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if in_function:
                    inner.append((child, lines[child.lineno - 1]))
                else:
                    top.update(_targets(module, child))
            if not in_function and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for the type checker only
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(source), False)
    return top, inner


@functools.cache
def heavy(module: str, seen: frozenset = frozenset()) -> frozenset[str]:
    """The heavy third-party packages importing ``module`` loads (through its module-level imports)."""
    if module in seen or module not in MODULES:
        return frozenset()
    parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
    found: set[str] = set()
    for target in _imports(module)[0] | set(parents):
        if target.split(".")[0] in HEAVY:
            found.add(target.split(".")[0])
        found |= heavy(target, seen | {module})
    return frozenset(found)


def test_the_analysis_sees_heavy_modules_and_deferred_imports():
    """Not vacuous: the model registry is heavy (torch), the store layout is not, and inside functions there are
    imports of both kinds."""
    assert "torch" in heavy("bigseg.models")
    assert heavy("bigseg.store") == frozenset()
    inner = [(m, node) for m in MODULES for node, _ in _imports(m)[1]]
    own = [(m, n) for m, n in inner if _targets(m, n)[0].startswith("bigseg")]
    assert len(own) > 30
    assert any(heavy(t) for m, n in own for t in _targets(m, n))


def test_own_modules_are_imported_at_module_level_unless_heavy_or_said_why():
    offenders = []
    for module in sorted(MODULES):
        if module in DEFERRING:
            continue
        for node, line in _imports(module)[1]:
            targets = [t for t in _targets(module, node) if t.split(".")[0] == "bigseg"]
            if not targets or any(heavy(t) for t in targets) or "# lazy:" in line:
                continue
            offenders.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{node.lineno}: {line.strip()}")
    assert not offenders, ("imports of light bigseg modules inside functions (move them to the top, or say why "
                           "they wait with '# lazy: reason'):\n" + "\n".join(offenders))


def test_the_command_line_starts_without_heavy_packages():
    """`bigseg --help` (and every command's start) loads neither torch nor dask.distributed nor pyvips: the
    verbs import them when they run."""
    code = "import sys, bigseg.cli; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (
        HEAVY | {"zarr", "dask", "scipy"})
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"importing bigseg.cli loads {loaded}"
