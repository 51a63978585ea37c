"""One source of truth: the manifests use the gateway's own config, ports, routes and metric names.

Each value a manifest repeats (the port, the probe paths, the scrape path, the DNS name of the backends,
the Sentinel addresses, metric names in alerts) is compared with where the gateway, the simulator or another
manifest defines it, so that a change on one side fails here instead of in a cluster.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from litestar.testing import AsyncTestClient

from coordination.connect import redis_client
from gateway.api.ops import healthz, metrics_endpoint, readyz
from gateway.app import create_app
from gateway.config import BackendConfig, FleetConfig, GatewayConfig, HealthConfig
from gateway.config_loader import load
from loadtests.sim import cli as sim_cli
from loadtests.sim.fleet import SimFleet
from tests.deploy.manifests import (
    DEPLOY,
    NAMESPACE,
    REPO,
    TARGETS,
    all_of,
    container,
    container_port,
    containers,
    env_value,
    find,
    gateway_config_dict,
    gateway_environ,
    gateway_toml,
    pod_spec,
    render,
    render_with_components,
)

GPU_TARGETS = ("base", "overlays/gke", "overlays/eks")


def _write_config(tmp_path: Path, objects: tuple[dict[str, Any], ...]) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(objects))
    return path


@pytest.mark.parametrize("target", TARGETS)
def test_configmap_toml_passes_gateway_check_config(target: str, tmp_path: Path) -> None:
    path = _write_config(tmp_path, render(target))
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},  # no GATEWAY_* variable of this shell leaks in
    )
    assert out.returncode == 0, out.stderr
    assert f"{path}: OK" in out.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_configmap_with_the_containers_environment_is_a_valid_config(target: str, tmp_path: Path) -> None:
    objects = render(target)
    config = load(_write_config(tmp_path, objects), environ=gateway_environ(objects))
    assert config.coordination.redis_url is not None, "every target shares state through Redis"
    assert config.coordination.password == "password-from-secret"
    assert config.server.host == "0.0.0.0"


def test_the_toml_is_the_file_in_deploy_base() -> None:
    for target in TARGETS:
        assert gateway_toml(render(target)) == (DEPLOY / "base/gateway/gateway.toml").read_text()


@pytest.mark.parametrize("target", TARGETS)
def test_ports_probes_and_scrape_path_are_the_gateways(target: str) -> None:
    objects = render(target)
    config = gateway_config_dict(objects)
    deployment = find(objects, "Deployment", "vllm-gateway")
    gateway = container(deployment, "gateway")
    assert container_port(gateway, "http") == config["server"]["port"]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The paths are the ones the handlers of that meaning register, and the app serves them.
    assert readyz.paths == {"/readyz"}
    assert healthz.paths == {"/healthz"}
    assert metrics_endpoint.paths == {"/metrics"}
    app_paths = {route.path for route in create_app(load_static()).routes}
    assert {"/readyz", "/healthz", "/metrics"} <= app_paths
    service = find(objects, "Service", "vllm-gateway")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    monitor = find(objects, "ServiceMonitor", "vllm-gateway")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]


def test_scrape_interval_equals_grafana_datasource_time_interval() -> None:
    datasource = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    interval = datasource["datasources"][0]["jsonData"]["timeInterval"]
    objects = render("base")
    monitors = all_of(objects, "ServiceMonitor") + all_of(objects, "PodMonitor")
    for monitor in monitors:
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        assert {e["interval"] for e in endpoints} == {interval}


def load_static() -> GatewayConfig:
    return GatewayConfig(
        fleet=FleetConfig(
            backends=[BackendConfig(id="dead", url="http://127.0.0.1:9", models=["m"])],
            health=HealthConfig(interval_s=60),
        )
    )


async def test_alert_rules_name_only_metrics_the_gateway_exports() -> None:
    async with AsyncTestClient(app=create_app(load_static())) as client:
        exposition = (await client.get("/metrics")).text
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M))
    # The text format names a counter's family with its _total already.
    suffixes = {"counter": [""], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    samples = {name + s for name, kind in families.items() for s in suffixes.get(kind, [""])}
    rule = find(render("base"), "PrometheusRule", "vllm-gateway")
    used = set()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            used |= set(re.findall(r"\bgateway_[a-z_]+", r["expr"]))
    assert used, "the alerts name no gateway metric"
    assert used <= samples, f"not exported by the gateway: {sorted(used - samples)}"


@pytest.mark.parametrize("target", TARGETS)
def test_draining_outlasts_the_longest_first_byte_wait(target: str) -> None:
    objects = render(target)
    config = gateway_config_dict(objects)
    deployment = find(objects, "Deployment", "vllm-gateway")
    gateway = container(deployment, "gateway")
    pause = int(gateway["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert pause >= 5
    assert grace >= pause + config["proxy"]["timeouts"]["first_byte_s"]


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_multiproc_dir_is_a_writable_subdirectory(target: str) -> None:
    """`gateway serve` with workers > 1 deletes and re-creates PROMETHEUS_MULTIPROC_DIR: on a read-only root
    it must lie inside an emptyDir, and must not be the mount point itself (which cannot be removed)."""
    objects = render(target)
    assert gateway_config_dict(objects)["server"]["workers"] > 1
    deployment = find(objects, "Deployment", "vllm-gateway")
    gateway = container(deployment, "gateway")
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    directory = env_value(gateway, "PROMETHEUS_MULTIPROC_DIR")
    empty_dirs = {v["name"] for v in pod_spec(deployment)["volumes"] if "emptyDir" in v}
    mounts = [m["mountPath"] for m in gateway["volumeMounts"] if m["name"] in empty_dirs]
    assert any(directory.startswith(m.rstrip("/") + "/") for m in mounts), (directory, mounts)


@pytest.mark.parametrize("target", TARGETS)
def test_config_file_path_and_mount_agree(target: str) -> None:
    deployment = find(render(target), "Deployment", "vllm-gateway")
    gateway = container(deployment, "gateway")
    path = env_value(gateway, "GATEWAY_CONFIG_FILE")
    assert gateway["args"] == ["serve", "--config", path]
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "config")
    assert path == f"{mount['mountPath']}/gateway.toml"
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"].startswith("gateway-config-")


# --- backends -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_dns_discovery_reads_the_headless_service(target: str) -> None:
    objects = render(target)
    dns = gateway_config_dict(objects)["fleet"]["dns"]
    service = find(objects, "Service", "vllm-headless")
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses", False), "only ready backends may join the fleet"
    assert dns["name"] == f"vllm-headless.{NAMESPACE}.svc.cluster.local"
    (port,) = service["spec"]["ports"]
    assert port["port"] == dns["port"]
    backends = [
        w
        for w in objects
        if w["kind"] == "Deployment"
        and all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    ]
    assert len(backends) == 1
    (backend,) = pod_spec(backends[0])["containers"]
    assert container_port(backend, port["targetPort"]) == dns["port"]
    assert backend["readinessProbe"]["httpGet"] == {"path": "/health", "port": port["targetPort"]}


@pytest.mark.parametrize("target", GPU_TARGETS)
def test_vllm_serves_a_model_the_gateway_routes_with_prefix_caching(target: str) -> None:
    objects = render(target)
    dns = gateway_config_dict(objects)["fleet"]["dns"]
    vllm = container(find(objects, "Deployment", "vllm"), "vllm")
    assert vllm["command"] == ["vllm", "serve"]
    args = vllm["args"]
    flags = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
    served = flags.get("--served-model-name", args[0])
    assert served in dns["models"]
    assert "--enable-prefix-caching" in args
    assert "--enable-prompt-tokens-details" in args
    assert int(flags["--port"]) == dns["port"] == container_port(vllm, "http")
    resources = vllm["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"]["path"] == "/health"
    pause = int(vllm["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pause > dns["refresh_s"], "vLLM must stay up until the gateway has re-resolved the Service"


def test_t4_overlay_runs_vllm_in_float16() -> None:
    args = container(find(render("overlays/eks"), "Deployment", "vllm"), "vllm")["args"]
    assert "--dtype=half" in args


def _sim_args(command: list[str]) -> argparse.Namespace:
    assert command[0] == "loadtest"
    parser = argparse.ArgumentParser(prog="loadtest")
    sim_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(command[1:])


async def test_simulator_command_serves_a_gateway_model_with_health_and_metrics() -> None:
    objects = render("overlays/dev")
    dns = gateway_config_dict(objects)["fleet"]["dns"]
    simulator = container(find(objects, "Deployment", "vllm-simulator"), "simulator")
    args = _sim_args(simulator["command"])  # the real CLI accepts the manifest's arguments
    config = sim_cli.config_from_args(args)
    assert config.backends == 1
    assert config.host == "0.0.0.0"
    assert config.base_port == dns["port"] == container_port(simulator, "http")
    assert config.resolved_profile().model in dns["models"]
    # And the server it starts answers the probe path and the scrape path.
    local = sim_cli.config_from_args(_sim_args([*simulator["command"], "--base-port=0", "--host=127.0.0.1"]))
    async with SimFleet(local) as fleet:
        import httpx

        async with httpx.AsyncClient(base_url=fleet.urls[0]) as client:
            assert (await client.get(simulator["readinessProbe"]["httpGet"]["path"])).status_code == 200
            assert "vllm:num_requests_waiting" in (await client.get("/metrics")).text


# --- Redis -------------------------------------------------------------------------------------------------


def test_sentinel_addresses_are_the_statefulsets_pods() -> None:
    objects = render("base")
    env = gateway_environ(objects)
    statefulset = find(objects, "StatefulSet", "redis")
    service = find(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    sentinel_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "sentinel")
    replicas = statefulset["spec"]["replicas"]
    expected = [
        f"{statefulset['metadata']['name']}-{i}.{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{sentinel_port}"
        for i in range(replicas)
    ]
    assert yaml.safe_load(env["GATEWAY_COORDINATION__SENTINELS"]) == expected
    configure = next(c for c in pod_spec(statefulset)["initContainers"] if c["name"] == "configure")
    assert env_value(configure, "SENTINEL_SERVICE") == env["GATEWAY_COORDINATION__SENTINEL_SERVICE"]
    assert int(env_value(configure, "REPLICAS")) == replicas
    script = find(objects, "ConfigMap", "redis-sentinel-scripts")["data"]["configure.sh"]
    assert "redis-headless.${POD_NAMESPACE}.svc.cluster.local" in script
    assert service["metadata"]["name"] == "redis-headless"
    redis = container(statefulset, "redis")
    assert urlsplit(env["GATEWAY_COORDINATION__REDIS_URL"]).port == container_port(redis, "redis")


def test_standalone_redis_url_is_its_service() -> None:
    objects = render("overlays/dev")
    url = urlsplit(gateway_environ(objects)["GATEWAY_COORDINATION__REDIS_URL"])
    service = find(objects, "Service", "redis")
    assert url.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert url.port == service["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("target", TARGETS)
def test_redis_password_secret_is_the_one_redis_uses(target: str) -> None:
    objects = render(target)
    gateway = container(find(objects, "Deployment", "vllm-gateway"), "gateway")
    ref = next(v for v in gateway["env"] if v["name"] == "GATEWAY_COORDINATION__PASSWORD")["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "password"
    in_cluster = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == "redis"]
    for redis in in_cluster:
        auth = next(v for v in pod_spec(redis)["volumes"] if v["name"] == "auth")
        assert auth["secret"]["secretName"] == ref["name"]
    secrets = [o for o in objects if o["kind"] == "Secret"]
    if target == "overlays/dev":
        assert [s["metadata"]["name"] for s in secrets] == [ref["name"]]
    else:
        assert not secrets, "real passwords are never in the repository: created with kubectl (docs/deploy.md)"


@pytest.mark.parametrize("target", TARGETS)
def test_the_redis_client_accepts_the_overlays_connection_settings(target: str, tmp_path: Path) -> None:
    objects = render(target)
    config = load(_write_config(tmp_path, objects), environ=gateway_environ(objects)).coordination
    assert config.redis_url is not None
    client = redis_client(
        config.redis_url,
        password=config.password,
        sentinels=config.sentinels,
        sentinel_service=config.sentinel_service,
        cluster=config.cluster,
    )
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "password-from-secret"
    query = parse_qs(urlsplit(config.redis_url).query)
    if target == "overlays/gke":
        assert kwargs["ssl_ca_certs"] == query["ssl_ca_certs"][0]
        assert kwargs["ssl_check_hostname"] is False
    if target == "base":
        assert config.sentinels
        assert client.connection_pool.service_name == config.sentinel_service


# --- pods --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_locked_down_and_sized(target: str) -> None:
    for workload, c, _ in containers(render(target)):
        where = f"{workload['metadata']['name']}/{c['name']}"
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] >= 10000, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), where
        assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), where


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_gateway_reaches_redis_and_the_backends(target: str) -> None:
    objects = render(target)
    policies = all_of(objects, "NetworkPolicy")
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    gateway = {"app.kubernetes.io/name": "vllm-gateway", "app.kubernetes.io/component": "gateway"}
    redis = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/component": "coordination-store"}
    for component, allowed in (("inference-backend", [gateway]), ("coordination-store", [gateway, redis])):
        selecting = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == component
        ]
        if not any(
            w["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
            for w in objects
            if "template" in w.get("spec", {})
        ):
            continue
        assert selecting, f"no NetworkPolicy selects the {component} pods"
        for policy in selecting:
            for rule in policy["spec"]["ingress"]:
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:  # Prometheus, from the monitoring namespace
                        assert component == "inference-backend"
                        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
                    else:
                        assert peer["podSelector"]["matchLabels"] in allowed, (policy["metadata"]["name"], peer)


def test_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for target in ("base", "overlays/gke", "overlays/eks"):
        gateway = container(find(render(target), "Deployment", "vllm-gateway"), "gateway")
        assert gateway["image"].rsplit(":", 1)[1] == version, target
    dev = container(find(render("overlays/dev"), "Deployment", "vllm-gateway"), "gateway")
    assert dev["image"] == "vllm-fleet-gateway:dev"
    assert dev["imagePullPolicy"] == "IfNotPresent"


def test_model_pvc_component_serves_the_downloaded_model_under_the_gateways_name() -> None:
    objects = render_with_components("overlays/gke", ("components/model-pvc",))
    dns = gateway_config_dict(objects)["fleet"]["dns"]
    vllm = container(find(objects, "Deployment", "vllm"), "vllm")
    flags = dict(a.split("=", 1) for a in vllm["args"] if a.startswith("--") and "=" in a)
    assert flags["--served-model-name"] in dns["models"]
    job = container(find(objects, "Job", "vllm-model-download"), "download")
    local_dir = re.search(r'local_dir="([^"]+)"', job["command"][-1])
    assert local_dir
    assert vllm["args"][0] == local_dir.group(1)
    assert flags["--served-model-name"] in job["command"][-1]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for w in (find(objects, "Deployment", "vllm"), find(objects, "Job", "vllm-model-download"))
        for v in pod_spec(w)["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {find(objects, "PersistentVolumeClaim", "vllm-models")["metadata"]["name"]}
    mount = next(m for m in vllm["volumeMounts"] if m["name"] == "models")
    assert mount["readOnly"] is True
    assert "emptyDir" not in next(
        v for v in pod_spec(find(objects, "Deployment", "vllm"))["volumes"] if v["name"] == "models"
    )
