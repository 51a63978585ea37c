"""The import walls of docs/architecture.md, checked on the source (static imports, type-only ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names (``from x import y`` also counts as ``x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def importers(package: str, target: str) -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("*.py")
        if any(name == target or name.startswith(f"{target}.") for name in imports(path))
    }


def test_only_the_routing_runner_speaks_the_stores_score_language() -> None:
    assert importers("gateway/routing", "coordination") == {"gateway/routing/runner.py"}


def test_coordination_never_imports_the_gateway() -> None:
    assert importers("coordination", "gateway") == set()


@pytest.mark.parametrize("library", ["prometheus_client", "opentelemetry"])
def test_business_modules_leave_metrics_and_traces_to_telemetry(library: str) -> None:
    rooms = ["gateway/exchange.py", "gateway/admission", "gateway/routing", "gateway/upstream", "coordination"]
    offenders = set()
    for room in rooms:
        paths = [ROOT / room] if room.endswith(".py") else list((ROOT / room).rglob("*.py"))
        offenders |= {str(p.relative_to(ROOT)) for p in paths if any(n.split(".")[0] == library for n in imports(p))}
    assert offenders == set()


def test_config_imports_no_room_so_loading_has_no_cycle() -> None:
    assert {name for name in imports(ROOT / "gateway/config.py") if name.startswith("gateway")} == set()
