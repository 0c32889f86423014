"""The layers of docs/architecture.md, checked on the source: who may import whom.

Nodes are the subpackages of `authgate` (`storage`, `registry`, …) and its top-level modules
(`resources`, `app`, …). Every `import` counts, inside functions and `TYPE_CHECKING` blocks too:
an import hidden there is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import authgate

ROOT = Path(authgate.__file__).parent

#: What the embedded store may build on: value types and helpers with no knowledge of HTTP,
#: accounts, policy or the other mode.
FOUNDATION = {"errors", "reference", "scope", "subject", "settings", "readiness", "bodies", "private_files", "tasks", "logs"}

#: What the running app holds (`Resources`). HTTP entry points in lower packages are handed it when
#: the app makes its routes and import its type for that; those edges are exempt from the cycle check.
LOCATOR = "resources"


def _node(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "authgate" or len(parts) < 2:
        return None
    return parts[1]


def _graph() -> dict[str, dict[str, set[str]]]:
    """node -> imported node -> the files (relative to `authgate/`) that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        source = relative.parts[0].removesuffix(".py")
        for found in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(found, ast.ImportFrom) and found.level == 0 and found.module:
                modules = [found.module]
            elif isinstance(found, ast.Import):
                modules = [alias.name for alias in found.names]
            else:
                continue
            for module in modules:
                target = _node(module)
                if target is not None and target != source:
                    edges[source][target].add(str(relative))
    return edges


GRAPH = _graph()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph = {source: {t for t in targets if t != LOCATOR} for source, targets in GRAPH.items()}
    cycle = _cycle(graph)
    if cycle is not None:
        steps = [f"{a} -> {b} ({', '.join(sorted(GRAPH[a][b]))})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("import cycle:\n  " + "\n  ".join(steps))


def test_only_request_handlers_know_the_resources() -> None:
    """Stores, policy, the audit log and the gateway get their dependencies passed in; only HTTP
    entry points (and `backends`, which hands them out) are given the whole `Resources`."""
    users = {source for source, targets in GRAPH.items() if LOCATOR in targets}
    assert users <= {"app", "backends", "admin_api", "registry", "auth", "identity", "console", "cli"}, users
    assert {"storage", "gateway", "policy", "audit"}.isdisjoint(users)


def test_no_handler_looks_its_dependencies_up_on_the_app() -> None:
    """Handlers are given what they use when `create_app` makes the routes; `app.state` is written
    there (for tests and tools) and read nowhere in the package."""
    readers = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}" for path in ROOT.rglob("*.py") if path.name != "app.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "state"
        and isinstance(node.value, ast.Attribute) and node.value.attr == "app"
    )
    assert readers == []


def test_identity_builds_on_auth_not_the_reverse() -> None:
    """The identity sources use accounts, credentials and the login limiter; auth asks them only
    through its own `IdentityLookup` protocol, and the app wires the chain in."""
    assert "identity" in GRAPH and "auth" in GRAPH["identity"]
    assert "identity" not in GRAPH["auth"], dict(GRAPH["auth"]).get("identity")


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_storage_is_the_embedded_store_only() -> None:
    """`storage/` builds on value types alone: nothing from gateway/, registry/, the locator, …"""
    above = {target: files for target, files in GRAPH["storage"].items() if target not in FOUNDATION}
    assert above == {}


def test_registry_does_not_know_the_gateway() -> None:
    """`gateway/` implements the registry's `Backend`; only `backends` (above both) chooses one."""
    assert {"gateway", "backends", "app"}.isdisjoint(GRAPH["registry"])
    assert {"backends", "app"}.isdisjoint(GRAPH["gateway"])
