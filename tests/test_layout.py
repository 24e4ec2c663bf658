"""The package tree is the architecture: dependencies point one way.

    byok.cli → byok.supervisor → byok.app → byok.ops → byok.cluster → byok.gateway
             → byok.telemetry
             → byok.config → byok.credentials → byok.providers → byok.http, byok_core

Each module may import from its own layer and the layers below it, never
above; no two modules import each other, directly or round a longer loop
(type-only imports count: they are dependencies a reader follows too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# lowest first; a module belongs to the first layer whose prefix names it
LAYERS = [
    ("byok_core",),
    ("byok.http",),
    ("byok.providers",),
    ("byok.credentials",),
    ("byok.config",),
    ("byok.telemetry",),
    ("byok.gateway",),
    ("byok.cluster",),
    ("byok.ops",),
    ("byok.app",),
    ("byok.supervisor",),
    ("byok.cli", "byok.__main__"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("byok", "byok_core"):
        for path in sorted((SRC / package).rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The byok modules `name` imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from p import x`: the module p.x, else a name defined in p
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a module's own packages load before it: not a dependency to judge
            if target and not (name == target or name.startswith(target + ".")):
                out.add(target)
    return out


def _layer(module: str) -> int:
    for n, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return n
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        if module != "byok":  # the package itself: its version only
            _layer(module)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module != "byok"
        for target in sorted(targets)
        if target != "byok" and _layer(target) > _layer(module)
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = []
    # a module is on a cycle when it can reach itself
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            current = stack.pop()
            if current == start:
                cycles.append(start)
                break
            if current in seen:
                continue
            seen.add(current)
            stack.extend(graph.get(current, ()))
    assert not cycles, f"modules on an import cycle: {', '.join(sorted(cycles))}"


def test_http_knows_nothing_of_llms() -> None:
    """bytes and connections: byok.http imports no other part of byok."""
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("byok.http"):
            assert all(t.startswith("byok.http") or t == "byok" for t in targets), module


def test_each_module_imports_on_its_own() -> None:
    """In a fresh interpreter, each module imported first of all byok's: an
    import that only works after another module was loaded is caught here."""
    names = sorted(m for m in _graph() if m.startswith("byok.") and m != "byok.__main__")
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'byok' or m.startswith('byok.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print('ok', len(" + repr(names) + "))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
