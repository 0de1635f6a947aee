"""The layout shows the architecture: a newcomer can trust that the arrows between the parts of app/ run one way.

The shared layers never import a domain, no domain imports the CLI or the factory, each domain imports only the
domains below it, and no two top-level parts of app/ import each other (imports under `if TYPE_CHECKING:` aside).
The factory (app/__init__.py) and the CLI (app/cli/) are the only places that put the domains together.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
SHARED = ["config", "db", "errors", "extensions", "storage", "migrate", "web", "queue"]
DOMAINS = ["auth", "sites", "devices", "meetings", "agenda", "calendar", "provisioning", "monitoring",
           "conference", "reports"]  # lowest first
ASSEMBLERS = {"app", "cli"}


def _part(module: str) -> str | None:
    names = module.split(".")
    if names[0] != "app":
        return None
    return "app" if len(names) == 1 else names[1]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for n in ast.walk(node))
    return inside


def import_edges() -> dict[str, dict[str, set[str]]]:
    """part -> imported part -> the files that import it (lazy imports inside functions count too)."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in APP.rglob("*.py"):
        relative = path.relative_to(APP.parent)
        if "migrations" in relative.parts:
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        source = _part(module)
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from app import create_app` is the factory; `from app import web` would be the part web
                targets = [f"{node.module}.{a.name}" if node.module == "app" and a.name in (*SHARED, *DOMAINS)
                           else node.module for a in node.names]
            for target in targets:
                part = _part(target)
                if part and part != source:
                    edges[source][part].add(str(relative))
    return edges


def test_shared_layers_import_no_domain_and_no_assembler() -> None:
    edges = import_edges()
    wrong = {f"{shared} -> {part}: {sorted(files)}" for shared in SHARED for part, files in edges[shared].items()
             if part in DOMAINS or part in ASSEMBLERS}
    assert not wrong, wrong


def test_each_domain_imports_only_the_domains_below_it() -> None:
    edges = import_edges()
    wrong = set()
    for rank, domain in enumerate(DOMAINS):
        for part, files in edges[domain].items():
            if part in ASSEMBLERS or (part in DOMAINS and DOMAINS.index(part) > rank):
                wrong.add(f"{domain} -> {part}: {sorted(files)}")
    assert not wrong, wrong


def test_every_part_of_app_is_a_known_layer_domain_or_assembler() -> None:
    parts = {p.stem if p.is_file() else p.name for p in APP.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    parts.discard("migrations")
    assert parts == set(SHARED) | set(DOMAINS) | {"cli"}, "a new top-level part of app/ must take its place here"


def test_no_two_parts_of_app_import_each_other() -> None:
    edges = import_edges()
    graph = {part: set(targets) for part, targets in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    assert not cycles, cycles
