"""The layering rules of STYLE.md, kept by walking every import of the source tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("schemas/**/*.py"), *ROOT.glob("services/**/*.py")])
# Composition roots and dev tools may wire services together.
ROOTS = {"cli", "demo", "localbroker"}
# The one home per vendor client (a path ending in "/" is a package).
VENDOR_HOMES = {
    "kafka": {"services/common/kafka_client/"},
    "faust": {"services/common/faust_app.py"},
    "confluent_kafka": {"services/common/kafka_confluent.py"},
}
# Pure cores: no Kafka, no faust, no database.
PURE = {
    "services/ingest/datasets.py",
    "services/ingest/sources.py",
    "services/learner/pipeline.py",
    "services/learner/prequential.py",
    "services/learner/drift.py",
    "services/learner/core.py",
    "services/learner/errors.py",
    "services/trainer/window.py",
    "services/trainer/train.py",
    "services/trainer/gate.py",
    "services/demo/stream.py",
    "services/demo/baselines.py",
    "services/demo/analysis.py",
    "services/demo/report.py",
    "services/evaluator/scoring.py",
    "services/evaluator/decision.py",
    "services/evaluator/join.py",
    "services/evaluator/state.py",
    "services/serving/protocol.py",
    "services/serving/shadow.py",
}
IO_PACKAGES = {"kafka", "faust", "aiokafka", "confluent_kafka", "sqlalchemy", "psycopg"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_layering(path: Path) -> None:
    name = rel(path)
    mods = imports(path)
    if name.startswith("schemas/"):
        assert not {m for m in mods if m.split(".")[0] in {"services", "bench", "tests"}}, (
            "schemas/ is the contract and imports nothing else of ours"
        )
        return
    package = name.split("/")[1]
    if package not in ROOTS:
        for mod in mods:
            parts = mod.split(".")
            if parts[0] != "services" or len(parts) < 2 or parts[1] in {package, "common"}:
                continue
            assert mod.startswith("services.registry.client"), (
                f"{name} imports {mod}: services never import each other "
                "(the registry's client is the one shared door)"
            )
    for vendor, homes in VENDOR_HOMES.items():
        uses = {m for m in mods if m.split(".")[0] == vendor}
        home = name in homes or any(h.endswith("/") and name.startswith(h) for h in homes)
        if uses and not home and not name.endswith("/app.py"):
            pytest.fail(f"{name} imports {sorted(uses)}: {vendor} lives only in {sorted(homes)}")
    if name in PURE:
        assert not {m for m in mods if m.split(".")[0] in IO_PACKAGES}, f"{name} must stay pure"


DATABASE = {"sqlalchemy", "alembic", "psycopg", "psycopg2", "sqlite3"}
REGISTRY_PRIVATE = {
    f"services.registry.{m}" for m in ("sql_store", "repository", "tables", "db", "migrations")
}


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if not rel(p).startswith("services/registry/")], ids=rel
)
def test_only_the_registry_touches_its_database(path: Path) -> None:
    """No module outside ``services/registry`` imports a database driver or the
    registry's SQL store, tables or migrations: everything else goes through the client."""
    mods = imports(path)
    drivers = {m for m in mods if m.split(".")[0] in DATABASE}
    private = {m for m in mods if any(m.startswith(p) for p in REGISTRY_PRIVATE)}
    assert not drivers | private, f"{rel(path)} imports {sorted(drivers | private)}"


def test_services_open_the_registry_over_http() -> None:
    """With an ``http://`` registry URL, the learner, trainer and evaluator get the REST
    store and never load the SQL store (so they hold no database connection)."""
    code = (
        "import sys\n"
        "import services.learner.app, services.trainer.app, services.evaluator.app\n"
        "from services.common.settings import DriftlineSettings\n"
        "from services.registry.client import Registry\n"
        "s = DriftlineSettings.load(env={'DRIFTLINE_REGISTRY_URL': 'http://127.0.0.1:9'})\n"
        "r = Registry.open(s)\n"
        "print(type(r.backend).__name__, 'services.registry.sql_store' in sys.modules)\n"
        "r.close()\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert out == ["RestStore", "False"]


def package_graph() -> dict[str, set[str]]:
    """``services`` package -> the other ``services`` packages its modules import
    (inside functions too: a deferred import is still a dependency)."""
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        name = rel(path)
        if not name.startswith("services/") or name.count("/") < 2:
            continue
        package = name.split("/")[1]
        targets = graph.setdefault(package, set())
        for mod in imports(path):
            parts = mod.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != package:
                targets.add(parts[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that starts and ends at the same node (None: acyclic).

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    True
    >>> find_cycle({"cli": {"demo"}, "demo": {"cli", "common"}, "common": set()})
    ['cli', 'demo', 'cli']
    """
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if (cycle := visit(nxt, [*path, node])) is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        if (cycle := visit(start, [])) is not None:
            return cycle
    return None


def test_no_import_cycle_between_packages() -> None:
    """The packages under ``services/`` form layers: no package imports, through any chain,
    one that imports it back (what both sides need lives below both, as
    :mod:`services.console` does for the CLI and the demo)."""
    graph = package_graph()
    assert {"cli", "demo", "common"} <= graph.keys()
    assert "demo" in graph["cli"]  # the CLI starts the demo: the walk sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])
