from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.config_loader import load

BACKEND = '[[fleet.backends]]\nid = "a"\nurl = "http://127.0.0.1:9"\nmodels = ["m"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_defaults_with_one_backend(tmp_path: Path) -> None:
    config = load(write(tmp_path, BACKEND), environ={})
    assert config.server.port == 8080
    assert config.routing.policy == "prefix"
    assert config.coordination.redis_url is None
    assert config.fleet.backends[0].models == ["m"]


def test_environment_overrides_file_and_converts_types(tmp_path: Path) -> None:
    env = {
        "GATEWAY_SERVER__PORT": "9999",
        "GATEWAY_COORDINATION__REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_ROUTING__PRESETS": '{"mine": {"scorers": [{"type": "load"}]}}',
        "GATEWAY_ROUTING__POLICY": "mine",
        "GATEWAY_SERVER__ACCESS_LOG": "true",
    }
    config = load(write(tmp_path, BACKEND + "[server]\nport = 1\n"), environ=env)
    assert config.server.port == 9999
    assert config.server.access_log is True
    assert config.coordination.redis_url == "redis://127.0.0.1:6379/0"
    assert config.routing.policy == "mine"
    assert config.routing.presets["mine"].scorers[0].type == "load"


def test_backends_from_environment_json() -> None:
    env = {"GATEWAY_FLEET__BACKENDS": '[{"id": "x", "url": "http://h:1", "models": ["m"]}]'}
    assert load(None, environ=env).fleet.backends[0].id == "x"


@pytest.mark.parametrize(
    ("text", "env", "names"),
    [
        pytest.param(BACKEND + "[server]\nprot = 1\n", {}, "prot", id="unknown-key"),
        pytest.param(BACKEND + '[server]\nport = "x"\n', {}, "$.server.port", id="wrong-type"),
        pytest.param(BACKEND, {"GATEWAY_SERVER__PORT": "eighty"}, "$.server.port", id="env-wrong-type"),
        pytest.param("", {}, "fleet", id="no-backends"),
        pytest.param(BACKEND + BACKEND, {}, "fleet.backends[1].id", id="duplicate-id"),
        pytest.param(BACKEND + '[routing]\npolicy = "magic"\n', {}, "routing.policy", id="unknown-policy"),
        pytest.param(
            BACKEND + '[routing]\npolicy = "x"\n[[routing.presets.x.scorers]]\ntype = "magic"\n',
            {},
            "routing.presets.x.scorers[0].type",
            id="unknown-scorer",
        ),
        pytest.param(
            BACKEND + '[routing]\npolicy = "x"\n[[routing.presets.x.scorers]]\ntype = "least_queue"\n'
            "params = { latency = 1 }\n",
            {},
            "routing.presets.x.scorers[0].params",
            id="unknown-scorer-param",
        ),
        pytest.param(
            BACKEND + '[routing]\npolicy = "x"\n[[routing.presets.x.scorers]]\ntype = "load"\nweight = 0\n',
            {},
            "scorers[0].weight",
            id="zero-weight",
        ),
        pytest.param(
            BACKEND + '[routing]\npolicy = "x"\n[routing.presets.x]\npicker = "max_score"\n',
            {},
            "routing.presets.x.scorers",
            id="no-scorers",
        ),
        pytest.param(BACKEND + "[routing]\nparams = {}\n", {}, "params", id="old-params-table"),
        pytest.param(BACKEND.replace("http://", "ftp://"), {}, "fleet.backends[0].url", id="bad-url"),
        pytest.param(BACKEND + "[proxy.timeouts]\nconnect_s = 0\n", {}, "proxy.timeouts.connect_s", id="zero-timeout"),
        pytest.param("[server\n", {}, "not valid TOML", id="bad-toml"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as info:
        load(write(tmp_path, text), environ=env)
    assert names in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml", environ={})


CUSTOM_PRESET = """
[routing]
policy = "cache_first"

[routing.presets.cache_first]
picker = "max_score"

[[routing.presets.cache_first.scorers]]
type = "prefix_cache"
weight = 3.0
params = { guard_eps = 0.25, guard_slack = 1.0 }

[[routing.presets.cache_first.scorers]]
type = "load"
weight = 1.0
"""


def test_custom_preset_from_toml_builds_with_its_weights_and_params(tmp_path: Path) -> None:
    import random

    from gateway.routing.runner import build_router
    from gateway.routing.types import Candidate, RequestFeatures

    config = load(write(tmp_path, BACKEND + CUSTOM_PRESET), environ={})
    router = build_router(config.routing, random.Random(1))
    assert router.name == "cache_first"
    assert "prefix_blocks" in router.reads
    features = router.prepare(RequestFeatures("m", False, prompt_text="x" * 512))
    plan = router.plan_candidates(features, [Candidate("a"), Candidate("b")])
    request = plan.pick_request()
    assert (request.guard_eps, request.guard_slack) == (0.25, 1.0)
    assert {line.per_cached_block for line in request.lines} == {3.0 / 2}  # weight 3 over 2 blocks
