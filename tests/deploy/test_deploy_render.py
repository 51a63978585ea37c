"""Every kustomization of deploy/ renders, and what it renders is valid Kubernetes.

Built-in kinds are validated (strictly: unknown fields are errors) against the OpenAPI schemas of
``kubernetes-validate`` for the oldest Kubernetes version the manifests support and for the version the EKS
module of infra/ creates. The Prometheus Operator kinds (ServiceMonitor, PodMonitor, PrometheusRule) are not
in those schemas: their few fields are checked by hand below.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    NAMESPACE,
    REPO,
    TARGETS,
    all_of,
    component_dirs,
    find,
    kustomization_dirs,
    pod_spec,
    render,
    render_with_components,
)
from tests.infra.hcl_reader import variable_default

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate missing: uv sync (it is a dev dependency)"
)

OLDEST_SUPPORTED = "1.30.0"
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"


def versions() -> list[str]:
    eks = variable_default("modules/eks-cluster", "kubernetes_version")
    return sorted({OLDEST_SUPPORTED, f"{eks}.0"})


@pytest.mark.parametrize("target", kustomization_dirs())
def test_every_kustomization_renders(target: str) -> None:
    objects = render(target)
    assert objects, f"deploy/{target} renders nothing"
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= obj.keys()
        assert obj["metadata"].get("name")


@pytest.mark.parametrize("component", component_dirs())
@pytest.mark.parametrize("target", ["base", "overlays/gke", "overlays/eks"])
def test_components_render_on_top_of_the_gpu_targets(target: str, component: str) -> None:
    objects = render_with_components(target, (component,))
    assert len(objects) > len(render(target))


def targets_and_components() -> list[tuple[str, tuple[str, ...]]]:
    return [(t, ()) for t in TARGETS] + [("overlays/gke", tuple(component_dirs()))]


@pytest.mark.parametrize("version", versions())
@pytest.mark.parametrize(("target", "components"), targets_and_components())
def test_rendered_objects_validate_against_the_kubernetes_schemas(
    target: str, components: tuple[str, ...], version: str
) -> None:
    objects = render_with_components(target, components) if components else render(target)
    errors = []
    for obj in objects:
        if obj["apiVersion"] == PROMETHEUS_OPERATOR:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("target", TARGETS)
def test_every_namespaced_object_is_in_the_stack_namespace(target: str) -> None:
    objects = render(target)
    assert find(objects, "Namespace", NAMESPACE)
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_operator_objects_select_what_exists(target: str) -> None:
    objects = render(target)
    services = all_of(objects, "Service")
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for monitor in all_of(objects, "ServiceMonitor"):
        assert monitor["apiVersion"] == PROMETHEUS_OPERATOR
        selected = [s for s in services if _matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
            for service in selected:
                assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    for monitor in all_of(objects, "PodMonitor"):
        assert monitor["apiVersion"] == PROMETHEUS_OPERATOR
        pods = [
            w for w in workloads if _matches(monitor["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert pods, f"PodMonitor {monitor['metadata']['name']} selects no pod"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings"}
            for workload in pods:
                ports = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
                assert endpoint["port"] in ports
            for relabeling in endpoint.get("relabelings", []):
                assert set(relabeling) <= {"sourceLabels", "targetLabel", "regex", "replacement", "action"}
    for rule in all_of(objects, "PrometheusRule"):
        assert rule["apiVersion"] == PROMETHEUS_OPERATOR
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}
                assert r.get("alert")
                assert r.get("expr")


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


@pytest.mark.parametrize("target", TARGETS)
def test_services_select_pods_and_target_their_ports(target: str) -> None:
    objects = render(target)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for service in all_of(objects, "Service"):
        pods = [w for w in workloads if _matches({"matchLabels": service["spec"]["selector"]}, _pod_labels(w))]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for workload in pods:
                names = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
                assert port["targetPort"] in names, (service["metadata"]["name"], port)


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("target", TARGETS)
def test_disruption_budgets_and_autoscalers_point_at_workloads(target: str) -> None:
    objects = render(target)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for pdb in all_of(objects, "PodDisruptionBudget"):
        assert any(_matches(pdb["spec"]["selector"], _pod_labels(w)) for w in workloads), pdb["metadata"]["name"]
    for hpa in all_of(objects, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert find(objects, ref["kind"], ref["name"])
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_dashboards_configmap_is_generated_from_grafana_not_copied() -> None:
    dashboards = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "grafana/dashboards/ holds no dashboard"
    objects = render("monitoring")
    configmap = find(objects, "ConfigMap", "vllm-gateway-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    # Every dashboard is in it, byte for byte: a dashboard added to grafana/ without a line in
    # deploy/monitoring/kustomization.yaml fails here (kustomize has no globs).
    assert sorted(configmap["data"]) == [p.name for p in dashboards]
    for path in dashboards:
        assert configmap["data"][path.name] == path.read_text()
        assert json.loads(configmap["data"][path.name])["uid"]
    provisioning = {
        "grafana-datasources": REPO / "grafana/provisioning/datasources",
        "grafana-dashboard-providers": REPO / "grafana/provisioning/dashboards",
    }
    for name, folder in provisioning.items():
        data = find(objects, "ConfigMap", name)["data"]
        assert data == {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}
    assert not list(DEPLOY.rglob("*.json")), "deploy/ must not hold copies of the dashboards"
