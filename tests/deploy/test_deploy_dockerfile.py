"""The Dockerfile, checked without a Docker engine: what it copies exists and is not ignored, what it runs
is a console script of the project, and what it declares agrees with the gateway and the manifests."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from gateway.api.ops import healthz
from gateway.config import ServerConfig
from tests.deploy.manifests import REPO, container, find, pod_spec, render

DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def stages() -> list[list[str]]:
    found: list[list[str]] = []
    for line in INSTRUCTIONS:
        if line.startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def final_stage() -> list[str]:
    return stages()[-1]


def copy_sources() -> list[str]:
    sources = []
    for line in INSTRUCTIONS:
        if line.startswith("COPY ") and "--from=" not in line:
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = copy_sources()
    assert {"pyproject.toml", "uv.lock", "gateway", "coordination", "loadtests"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
        for pattern in dockerignore():
            assert not fnmatch.fnmatch(source, pattern.rstrip("/")), f".dockerignore {pattern} drops COPY {source}"


def test_every_package_the_wheel_needs_is_copied() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= set(copy_sources())
    assert pyproject["project"]["readme"] in copy_sources(), "hatchling reads the readme to build the wheel"


def test_multi_stage_with_uv_locked_and_without_dev_dependencies() -> None:
    assert len(stages()) >= 3
    syncs = [line for line in INSTRUCTIONS if "uv sync" in line]
    assert syncs
    assert all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert any(
        line.startswith("COPY --from=ghcr.io/astral-sh/uv") or "FROM ghcr.io/astral-sh/uv" in line
        for line in INSTRUCTIONS
    )


def test_final_stage_has_no_build_tools_and_a_non_root_user() -> None:
    final = final_stage()
    assert final[0].startswith("FROM python:")
    assert "slim" in final[0]
    text = "\n".join(final)
    assert not re.search(r"\b(apt-get|apk|gcc|g\+\+|build-essential|make)\b", text)
    assert "/uv " not in text
    assert "uv sync" not in text
    (user,) = [line.split()[1] for line in final if line.startswith("USER ")]
    uid = int(user.split(":")[0])
    assert uid >= 10000
    for target in ("base", "overlays/dev"):
        for name in ("vllm-gateway",):
            assert pod_spec(find(render(target), "Deployment", name))["securityContext"]["runAsUser"] == uid


def test_entrypoint_is_the_gateway_console_script_under_granian() -> None:
    (entrypoint,) = [line for line in final_stage() if line.startswith("ENTRYPOINT ")]
    (cmd,) = [line for line in final_stage() if line.startswith("CMD ")]
    assert entrypoint == 'ENTRYPOINT ["gateway"]'
    assert cmd == 'CMD ["serve"]'
    assert SCRIPTS["gateway"] == "gateway.cli:main"
    # The dev overlay runs the simulator from the same image.
    simulator = container(find(render("overlays/dev"), "Deployment", "vllm-simulator"), "simulator")
    assert simulator["command"][0] in SCRIPTS


def test_healthcheck_calls_the_liveness_route_with_python() -> None:
    (check,) = [line for line in final_stage() if line.startswith("HEALTHCHECK ")]
    assert '"python"' in check
    assert "curl" not in check
    (path,) = healthz.paths
    assert path in check


def test_port_and_config_path_agree_with_the_gateway_and_the_deployment() -> None:
    (expose,) = [line for line in final_stage() if line.startswith("EXPOSE ")]
    assert int(expose.split()[1]) == ServerConfig().port
    env = " ".join(line for line in final_stage() if line.startswith("ENV "))
    config_file = re.search(r"GATEWAY_CONFIG_FILE=(\S+)", env)
    assert config_file
    gateway = container(find(render("base"), "Deployment", "vllm-gateway"), "gateway")
    assert {"name": "GATEWAY_CONFIG_FILE", "value": config_file.group(1)} in gateway["env"]
    assert "GATEWAY_SERVER__HOST=0.0.0.0" in env


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    ignored = set(dockerignore())
    assert {".git", ".venv", "tests"} <= ignored
    assert not any(Path(p).name == "uv.lock" for p in ignored)
