"""The Grafana dashboards and provisioning files load as they are: structure, variables, queries, docs.

The live counterpart (every query against a real Prometheus) is ``test_dashboards_prometheus.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway.telemetry.metrics import GatewayMetrics
from tests.grafana.dashboards import (
    DASHBOARDS_DIR,
    DOCS,
    NAMES,
    PROVISIONING,
    ROOT,
    all_dashboards,
    generator,
    panels,
    queries,
    substitute,
    unresolved,
    variables,
)

DASHBOARDS = all_dashboards()
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = re.compile(r"(gateway_[a-z0-9_]+|vllm:[a-z0-9_:]+)\s*(\{[^}]*\})?")
SUFFIX = re.compile(r"_(total|bucket|count|sum|created)$")


def gateway_metric_labels() -> dict[str, set[str]]:
    """Every ``gateway_*`` metric name defined in gateway/telemetry/metrics.py -> its label names."""
    source = (ROOT / "gateway" / "telemetry" / "metrics.py").read_text()
    names = set(re.findall(r'"(gateway_[a-z0-9_]+)"', source))
    labels = {name: ({"backend"} if name.startswith("gateway_backend_") else set()) for name in names}
    for metric in vars(GatewayMetrics()).values():
        if isinstance(metric, MetricWrapperBase):
            labels[metric._name] = set(metric._labelnames)
    return labels


METRICS = gateway_metric_labels()


def test_four_dashboards_and_nothing_else() -> None:
    assert sorted(p.stem for p in DASHBOARDS_DIR.glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_loads_as_is(name: str) -> None:
    d = DASHBOARDS[name]
    text = (DASHBOARDS_DIR / f"{name}.json").read_text()
    assert "${DS_" not in text, "an export for sharing: needs an import step"
    assert "__inputs" not in d, "an export for sharing: needs an import step"
    assert d.get("id") is None, "a fixed numeric id clashes between Grafana instances"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"])
    assert d["title"]
    assert "vllm-fleet-gateway" in d["tags"]
    assert 36 <= d["schemaVersion"] <= 41  # Grafana 10 and 11


def test_uids_and_titles_are_unique() -> None:
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)
    assert len({d["title"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


@pytest.mark.parametrize("name", NAMES)
def test_variables(name: str) -> None:
    found = variables(DASHBOARDS[name])
    datasource = found["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    for var in ("model", "backend"):
        v = found[var]
        assert v["type"] == "query", var
        assert v["multi"] is True, var
        assert v["includeAll"] is True, var
        assert v["allValue"] == ".*", var
        assert v["datasource"] == DATASOURCE_REF, var
        definition = v["definition"]
        assert re.fullmatch(r"label_values\((gateway_[a-z0-9_]+)\s*,\s*" + var + r"\)", definition), definition
        query = v["query"]
        assert (query["query"] if isinstance(query, dict) else query) == definition


@pytest.mark.parametrize("name", NAMES)
def test_panels(name: str) -> None:
    d = DASHBOARDS[name]
    all_panels = panels(d)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    graphs = [p for p in all_panels if p["type"] != "row"]
    assert len(graphs) >= 4
    for p in graphs:
        assert p["title"], p
        assert p["datasource"] == DATASOURCE_REF, p["title"]
        assert p.get("description"), p["title"]
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        assert grid["h"] > 0, p["title"]
        targets = p.get("targets", [])
        assert targets, f"{p['title']}: no targets"
        assert len({t["refId"] for t in targets}) == len(targets), p["title"]
        for t in targets:
            assert t.get("expr", "").strip(), f"{p['title']} [{t.get('refId')}]: no expr"
            assert t["datasource"] == DATASOURCE_REF, p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_queries_filter_by_the_variables(name: str) -> None:
    """Each selector of a series with a model/backend label filters on $model/$backend, and uses no
    variable the dashboard does not define."""
    d = DASHBOARDS[name]
    defined = set(variables(d))
    problems = []
    for q in queries(name, d):
        for var in unresolved(q.expr):
            if not var.startswith("__") and var not in defined:
                problems.append(f"{q}: undefined variable ${var}")
        for metric, braces in SELECTOR.findall(q.expr):
            labels = braces or "{}"
            if metric.startswith("vllm:"):
                wanted = ['model_name=~"$model"', 'backend=~"$backend"']
            else:
                base = SUFFIX.sub("", metric)
                if base not in METRICS and metric not in METRICS:
                    problems.append(f"{q}: {metric} is not defined in gateway/telemetry/metrics.py")
                    continue
                has = METRICS.get(base, METRICS.get(metric, set()))
                wanted = [f'{label}=~"${label}"' for label in ("model", "backend") if label in has]
            problems += [f"{q}: {metric} lacks {w}" for w in wanted if w not in labels]
    assert not problems, "\n".join(problems)


def test_every_gateway_metric_is_on_a_dashboard() -> None:
    text = " ".join(q.expr for name, d in DASHBOARDS.items() for q in queries(name, d))
    names = set(re.findall(r"gateway_[a-z0-9_]+", text))
    used = names | {SUFFIX.sub("", m) for m in names}
    missing = sorted(m for m in METRICS if m not in used)
    assert not missing, f"metrics no dashboard shows: {missing}"


def test_variable_substitution_leaves_valid_looking_queries() -> None:
    values = {"model": ".*", "backend": ".*", "datasource": "prometheus"}
    for name, d in DASHBOARDS.items():
        for q in queries(name, d):
            expr = substitute(q.expr, values)
            assert not unresolved(expr), f"{q}: {unresolved(expr)} left after substitution"
            assert expr.count("(") == expr.count(")"), q


def test_committed_json_is_what_the_generator_writes() -> None:
    gen = generator()
    for name, d in gen.DASHBOARDS.items():
        committed = (DASHBOARDS_DIR / f"{name}.json").read_text()
        assert committed == gen.dump(d), f"{name}.json differs: run `uv run python grafana/generate.py`"


def _yaml(path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROVISIONING / path).read_text())
    return data


def test_datasource_provisioning() -> None:
    data = _yaml("datasources/prometheus.yaml")
    assert data["apiVersion"] == 1
    (ds,) = data["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"].startswith("http")
    defaults = {variables(d)["datasource"]["current"]["value"] for d in DASHBOARDS.values()}
    assert defaults == {ds["uid"]}, "the dashboards' datasource variable defaults to the provisioned uid"


def test_dashboard_provisioning_points_at_the_dashboards_folder() -> None:
    data = _yaml("dashboards/dashboards.yaml")
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    docs = DOCS.read_text()
    # The docs tell how grafana/dashboards/ gets to that path (docker and Kubernetes).
    assert f"grafana/dashboards:{path}" in docs, f"docs/observability.md does not mount grafana/dashboards at {path}"
    assert f"mountPath: {path}" in docs


def test_docs_describe_every_panel_and_metric() -> None:
    docs = DOCS.read_text()
    missing = [
        f"{name}: {p['title']}"
        for name, d in DASHBOARDS.items()
        for p in panels(d)
        if p["type"] != "row" and p["title"] not in docs
    ]
    missing += [m for m in METRICS if f"`{m}" not in docs]
    assert not missing, f"docs/observability.md lacks: {missing}"
