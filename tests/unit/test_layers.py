"""Imports flow one way (docs/design.md, Layout): a module never imports a
higher layer, and the pure layer never imports an event loop or a driver."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "collab"

# Lower number = lower layer. A module may import its own layer or lower ones.
LAYERS: dict[str, int] = {
    "types": 0, "errors": 0, "clock": 0,
    "access": 1, "messages": 1, "protocol": 1, "textops": 1, "peer": 1, "frames": 1, "events": 1,
    "token_book": 1, "sockets": 1,
    "close_codes": 1, "connection": 1,
    "settings": 2, "logs": 2, "metrics": 2, "redis_client": 2,
    "store": 3, "leases": 3, "presence": 3, "registry": 3, "bus": 3,
    "host": 3, "signouts": 3, "admission": 3,
    "tokens": 4, "edits": 4, "fanout": 4, "revocation": 4, "handoff": 4, "renewals": 4,
    "hub": 5,
    "auth": 2, "outbox": 2, "ws_transport": 2,
    "runtime": 6, "openapi": 7, "session": 7, "api": 7, "app": 8, "cli": 9,
}  # fmt: skip
PURE = {name for name, layer in LAYERS.items() if layer <= 1}
FORBIDDEN_IN_PURE = {"asyncio", "starlette", "redis", "asyncpg", "aiosqlite", "uvicorn"}


def _modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for p in ROOT.rglob("*.py")
        if p.name != "__init__.py" or p.parent != ROOT
    }


def _imports(path: Path) -> set[str]:
    """Every module named by an import, including those under TYPE_CHECKING."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from collab import frames`` names the module collab.frames.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_module_has_a_layer() -> None:
    missing = {_top(m) for m in _modules()} - set(LAYERS) - {"__init__", "__main__"}
    assert not missing, f"give these modules a layer: {sorted(missing)}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for module, path in _modules().items():
        own = LAYERS.get(_top(module))
        if own is None:
            continue
        for name in _imports(path):
            if not name.startswith("collab."):
                continue
            target = _top(name.removeprefix("collab."))
            if target in LAYERS and LAYERS[target] > own:
                upward.append(f"{module} -> {target}")
    # Under TYPE_CHECKING too: no cycle anywhere.
    assert sorted(set(upward)) == []


def test_pure_modules_import_no_event_loop_or_driver() -> None:
    bad = []
    for module, path in _modules().items():
        if _top(module) not in PURE:
            continue
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN_IN_PURE:
                bad.append(f"{module} imports {name}")
    assert bad == []


def test_no_import_cycle_at_all() -> None:
    """Within a layer too, and under TYPE_CHECKING: the import graph of the
    package is acyclic."""
    modules = _modules()
    graph = {
        m: {
            n.removeprefix("collab.")
            for n in _imports(p)
            if n.startswith("collab.") and n.removeprefix("collab.") in modules
        }
        for m, p in modules.items()
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError(" -> ".join((*path[path.index(module) :], module)))
        if module in done:
            return
        for target in graph.get(module, ()):
            visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
