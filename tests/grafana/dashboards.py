"""Reading the committed Grafana dashboards: their panels, their queries, and Grafana's variable substitution."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
DOCS = ROOT / "docs" / "observability.md"
NAMES = ("overview", "routing", "fleet", "coordination")

# What Grafana puts in place of its built-in interval variables, for a 1 s scrape interval.
BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m", "__range_s": "300", "__interval_ms": "5000"}
# $name, ${name}, ${name:format} and [[name]]: Grafana's variable syntaxes; names start with a letter or _.
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)(?::\w+)?\]\]")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref}]: {self.expr}"


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DASHBOARDS_DIR / f"{name}.json").read_text())
    return result


def all_dashboards() -> dict[str, dict[str, Any]]:
    return {name: load(name) for name in NAMES}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(name: str, dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(name, panel["title"], target.get("refId", "?"), target.get("expr", ""))
        for panel in panels(dashboard)
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
    ]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of ``expr`` with ``values`` (dashboard variables) and ``BUILTINS``.

    Unknown names are left as they are, as Grafana does (so ``label_replace``'s ``${1}`` survives)."""

    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return {**BUILTINS, **values}.get(name, match.group(0))

    return VARIABLE.sub(one, expr)


def unresolved(expr: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in VARIABLE.finditer(expr)]


def generator() -> ModuleType:
    """``grafana/generate.py``, imported by path (``grafana/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
