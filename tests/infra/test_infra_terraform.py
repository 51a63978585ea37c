"""The Terraform of infra/, read without a terraform binary: it parses, it is documented, its providers are
pinned, its examples keep remote state, and what the deploy overlays consume agrees with it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.config_loader import load
from tests.deploy.manifests import DEPLOY, REPO, container, find, pod_spec, render
from tests.infra.hcl_reader import (
    INFRA,
    blocks,
    hcl2,
    module_dirs,
    parse,
    resources,
    terraform_blocks,
    tf_files,
    unquote,
    variable_default,
)

MODULES = [m for m in module_dirs() if m.startswith("modules/")]
EXAMPLES = [m for m in module_dirs() if m.startswith("examples/")]
META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}
# Variable types that need no validation: any value of the type is acceptable.
UNCONSTRAINED_TYPES = {"bool", "${map(string)}", "map(string)"}


def test_the_expected_modules_and_examples_exist() -> None:
    assert {
        "modules/gke-cluster",
        "modules/memorystore-redis",
        "modules/eks-cluster",
        "modules/elasticache-redis",
    } <= set(MODULES)
    assert {"examples/gke", "examples/eks"} <= set(EXAMPLES)


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path: Path) -> None:
    hcl2()
    assert parse(path) is not None


@pytest.mark.parametrize("module", module_dirs())
def test_every_variable_is_documented_typed_and_validated(module: str) -> None:
    for name, body in blocks(module, "variable").items():
        description = unquote(body.get("description", ""))
        assert len(description) > 15, f"{module}: variable {name} needs a description"
        assert "type" in body, f"{module}: variable {name} needs a type"
        if unquote(body["type"]) not in UNCONSTRAINED_TYPES:
            assert body.get("validation"), f"{module}: variable {name} needs a validation block"
            for v in body["validation"]:
                assert len(unquote(v["error_message"])) > 15


@pytest.mark.parametrize("module", module_dirs())
def test_every_output_is_documented(module: str) -> None:
    outputs = blocks(module, "output")
    assert outputs, f"{module} has no outputs"
    for name, body in outputs.items():
        assert len(unquote(body.get("description", ""))) > 15, f"{module}: output {name} needs a description"


@pytest.mark.parametrize("module", module_dirs())
def test_providers_and_terraform_are_pinned(module: str) -> None:
    (settings,) = terraform_blocks(module)
    assert unquote(settings["required_version"]).startswith(">=")
    providers = {k: v for block in settings["required_providers"] for k, v in block.items() if not k.startswith("__")}
    assert providers
    for name, spec in providers.items():
        version = unquote(spec["version"])
        assert ">=" in version, f"{module}: {name} needs a lower bound"
        assert "<" in version.replace("<=", ""), f"{module}: {name} needs an upper bound"
        assert unquote(spec["source"]).startswith("hashicorp/")


@pytest.mark.parametrize("module", module_dirs())
def test_every_module_and_example_has_a_readme_with_an_example(module: str) -> None:
    readme = INFRA / module / "README.md"
    assert readme.is_file(), f"{module} has no README.md"
    text = readme.read_text()
    if module.startswith("modules/"):
        assert re.search(r"```hcl\n.*source\s*=\s*\"\.\./\.\./modules/", text, re.S), "no usage example"
        for name in blocks(module, "variable"):
            assert f"`{name}`" in text, f"{module}/README.md does not list input {name}"
        for name in blocks(module, "output"):
            assert f"`{name}`" in text, f"{module}/README.md does not list output {name}"
    else:
        assert "terraform init -backend-config=backend.hcl" in text
        assert "terraform apply" in text


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_keep_remote_state(example: str) -> None:
    (settings,) = terraform_blocks(example)
    (backend,) = settings["backend"]
    kind = next(unquote(k) for k in backend if not k.startswith("__"))
    assert kind in ("gcs", "s3")
    sample = INFRA / example / "backend.hcl.example"
    keys = set(re.findall(r"^(\w+)\s*=", sample.read_text(), re.M))
    required = {"gcs": {"bucket", "prefix"}, "s3": {"bucket", "key", "region", "encrypt", "use_lockfile"}}[kind]
    assert required <= keys
    assert (INFRA / example / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("example", EXAMPLES)
def test_module_calls_pass_every_required_input_and_nothing_else(example: str) -> None:
    for name, call in blocks(example, "module").items():
        source = (INFRA / example / unquote(call["source"])).resolve()
        assert source.is_dir(), f"{example}: module {name} source {source} does not exist"
        target = str(source.relative_to(INFRA))
        declared = blocks(target, "variable")
        passed = {k for k in call if not k.startswith("__")} - META_ARGUMENTS
        assert passed <= set(declared), f"{example}: module {name} passes unknown inputs {passed - set(declared)}"
        required = {v for v, body in declared.items() if "default" not in body}
        assert required <= passed, f"{example}: module {name} misses {required - passed}"
        for ref in re.findall(r"module\.(\w+)\.(\w+)", str(call)):
            called = blocks(example, "module")[ref[0]]
            outputs = blocks(str((INFRA / example / unquote(called["source"])).resolve().relative_to(INFRA)), "output")
            assert ref[1] in outputs, f"{example}: module.{ref[0]} has no output {ref[1]}"


def test_sensitive_outputs_are_marked() -> None:
    for module in module_dirs():
        for name, body in blocks(module, "output").items():
            if re.search(r"auth|password|token", name):
                assert body.get("sensitive") is True, f"{module}: output {name} must be sensitive"


# --- what the deploy overlays consume ---------------------------------------------------------------------


def test_gke_overlay_selects_the_gpu_pool_terraform_creates() -> None:
    accelerator = variable_default("modules/gke-cluster", "gpu_accelerator_type")
    output = blocks("modules/gke-cluster", "output")["gpu_node_selector"]["value"]
    assert unquote(output) == {"cloud.google.com/gke-accelerator": "${var.gpu_accelerator_type}"}
    vllm = find(render("overlays/gke"), "Deployment", "vllm")
    assert pod_spec(vllm)["nodeSelector"] == {"cloud.google.com/gke-accelerator": accelerator}
    pool = resources("modules/gke-cluster")[("google_container_node_pool", "gpu")]
    (node_config,) = pool["node_config"]
    (accel,) = node_config["guest_accelerator"]
    assert unquote(accel["type"]) == "${var.gpu_accelerator_type}"
    assert accel["gpu_driver_installation_config"], "the GPU pool must install the NVIDIA driver"


def test_eks_overlay_selects_and_tolerates_the_gpu_node_group_terraform_creates() -> None:
    label = variable_default("modules/eks-cluster", "gpu_node_label")
    group = resources("modules/eks-cluster")[("aws_eks_node_group", "gpu")]
    assert unquote(group["labels"]) == {"accelerator": "${var.gpu_node_label}"}
    vllm = find(render("overlays/eks"), "Deployment", "vllm")
    assert pod_spec(vllm)["nodeSelector"] == {"accelerator": label}
    taint_local = next(b for b in parse(INFRA / "modules/eks-cluster/main.tf")["locals"] if "gpu_taint" in b)
    taint = unquote(taint_local["gpu_taint"])
    effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
    tolerations = pod_spec(vllm)["tolerations"]
    assert any(
        t["key"] == taint["key"] and t["operator"] == "Exists" and t["effect"] == effect[taint["effect"]]
        for t in tolerations
    ), f"vLLM does not tolerate the GPU taint {taint}"
    assert unquote(group["ami_type"]).endswith("_NVIDIA")


def _env_from_output(module: str, values: dict[str, str]) -> dict[str, str]:
    """The gateway_redis_env output of ``module`` with its interpolations replaced by ``values``."""
    template = unquote(blocks(module, "output")["gateway_redis_env"]["value"])
    local_url = next(unquote(b["redis_url"]) for b in parse(INFRA / module / "main.tf")["locals"] if "redis_url" in b)
    text = template.replace("${local.redis_url}", local_url)
    for expression, value in values.items():
        text = text.replace("${" + expression + "}", value)
    assert "${" not in text, f"unresolved interpolation in {text}"
    text = text.replace("\\n", "\n")
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def _overlay_env(overlay: str) -> dict[str, str]:
    text = (DEPLOY / "overlays" / overlay / "redis.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize(
    ("overlay", "module", "values"),
    [
        (
            "gke",
            "modules/memorystore-redis",
            {
                "google_redis_instance.this.host": "10.1.2.3",
                "google_redis_instance.this.port": "6378",
                "var.ca_cert_path": "/etc/gateway/redis-ca/ca.pem",
            },
        ),
        (
            "eks",
            "modules/elasticache-redis",
            {
                "aws_elasticache_replication_group.this.primary_endpoint_address": "master.x.use1.cache.amazonaws.com",
                "var.port": "6379",
            },
        ),
    ],
)
def test_terraform_redis_env_fits_the_overlay(
    overlay: str, module: str, values: dict[str, str], tmp_path: Path
) -> None:
    produced = _env_from_output(module, values)
    committed = _overlay_env(overlay)
    assert produced.keys() == committed.keys()
    url, placeholder = (
        urlsplit(produced["GATEWAY_COORDINATION__REDIS_URL"]),
        urlsplit(committed["GATEWAY_COORDINATION__REDIS_URL"]),
    )
    assert (url.scheme, url.port, url.path, parse_qs(url.query)) == (
        placeholder.scheme,
        placeholder.port,
        placeholder.path,
        parse_qs(placeholder.query),
    )
    assert url.scheme == "rediss", "managed Redis is reached over TLS"
    if "var.ca_cert_path" in values:
        assert values["var.ca_cert_path"] == variable_default(module, "ca_cert_path")
        assert parse_qs(url.query)["ssl_ca_certs"] == [values["var.ca_cert_path"]]
        gateway = container(find(render(f"overlays/{overlay}"), "Deployment", "vllm-gateway"), "gateway")
        mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
        assert values["var.ca_cert_path"] == mounts["redis-ca"] + "/ca.pem"
    if "var.port" in values:
        assert values["var.port"] == str(variable_default(module, "port"))
    # What Terraform writes is a configuration the gateway accepts, password included.
    config_file = tmp_path / "gateway.toml"
    config_file.write_text('[fleet.dns]\nname = "vllm-headless"\n')
    config = load(config_file, environ={**produced, "GATEWAY_COORDINATION__PASSWORD": "secret"})
    assert config.coordination.redis_url == produced["GATEWAY_COORDINATION__REDIS_URL"]


def test_terraform_outputs_named_in_overlays_and_docs_exist() -> None:
    """Every `terraform output -raw NAME` the overlays and docs/deploy.md tell a user to run is an output."""
    outputs = {example: set(blocks(example, "output")) for example in EXAMPLES}
    texts = {
        "gke": [DEPLOY / "overlays/gke/kustomization.yaml"],
        "eks": [DEPLOY / "overlays/eks/kustomization.yaml"],
    }
    for cloud, paths in texts.items():
        for path in paths:
            names = re.findall(r"terraform output -raw (\w+)", path.read_text())
            assert names, f"{path} names no terraform output"
            assert set(names) <= outputs[f"examples/{cloud}"], set(names) - outputs[f"examples/{cloud}"]
    docs = (REPO / "docs" / "deploy.md").read_text()
    for section, cloud in (("## GKE", "gke"), ("## EKS", "eks")):
        body = docs.split(section, 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(r"terraform output -raw (\w+)", body))
        assert documented, f"docs/deploy.md {section} names no terraform output"
        assert documented <= outputs[f"examples/{cloud}"], documented - outputs[f"examples/{cloud}"]


def test_image_repository_output_matches_the_overlay_image_name() -> None:
    for cloud, pattern in (
        ("gke", r"^[a-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+/vllm-fleet-gateway$"),
        ("eks", r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/vllm-fleet-gateway$"),
    ):
        gateway = container(find(render(f"overlays/{cloud}"), "Deployment", "vllm-gateway"), "gateway")
        name = gateway["image"].rsplit(":", 1)[0]
        assert re.match(pattern, name), f"{cloud}: {name}"
        assert "image_repository" in blocks(f"examples/{cloud}", "output")


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform not on PATH (HashiCorp's release; no registry this project's CI reaches ships it)")
    out = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout
