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
        pytest.param(BACKEND + "[proxy]\nretries = -1\n", {}, "proxy.retries", id="negative-retries"),
        pytest.param(BACKEND + "[proxy]\nmax_connections = -1\n", {}, "proxy.max_connections", id="negative-pool"),
        pytest.param(BACKEND.replace("http://127.0.0.1:9", "http://"), {}, "fleet.backends[0].url", id="url-no-host"),
        pytest.param(BACKEND.replace("127.0.0.1:9", ":9"), {}, "fleet.backends[0].url", id="url-empty-host"),
        pytest.param(BACKEND.replace("127.0.0.1:9", "h:abc"), {}, "fleet.backends[0].url", id="url-port-not-numeric"),
        pytest.param(BACKEND.replace("127.0.0.1:9", "h:70000"), {}, "fleet.backends[0].url", id="url-port-range"),
        pytest.param(BACKEND.replace("127.0.0.1:9", "h:0"), {}, "fleet.backends[0].url", id="url-port-zero"),
        pytest.param(BACKEND + "[fleet.health]\ntimeout_s = -1\n", {}, "fleet.health.timeout_s", id="negative-scrape"),
        pytest.param(BACKEND + "[fleet.health]\nunhealthy_threshold = 0\n", {}, "unhealthy_threshold", id="zero-thr"),
        pytest.param(BACKEND + "[fleet.health]\nconsecutive_errors = 0\n", {}, "consecutive_errors", id="zero-errors"),
        pytest.param(BACKEND + "[fleet.health]\nbase_ejection_s = -1\n", {}, "base_ejection_s", id="negative-eject"),
        pytest.param(BACKEND + "[fleet.health]\nmax_ejection_percent = 101\n", {}, "max_ejection_percent", id="pct"),
        pytest.param(BACKEND + "[server]\nport = 99999\n", {}, "server.port", id="port-range"),
        pytest.param(BACKEND + "[server]\nport = 0\n", {}, "server.port", id="port-zero"),
        pytest.param(BACKEND + '[server]\nport = "21090"\n', {}, "server.port", id="file-string-not-coerced"),
        pytest.param(BACKEND + "[server]\naccess_log = 1\n", {}, "server.access_log", id="file-int-not-bool"),
        pytest.param(BACKEND, {"GATEWAY_SERVER__PORT": "99999"}, "server.port", id="env-port-range"),
        pytest.param('[fleet.dns]\nname = "h"\nport = 0\n', {}, "fleet.dns.port", id="dns-port"),
        pytest.param('[fleet.dns]\nname = "h"\nrefresh_s = 0\n', {}, "fleet.dns.refresh_s", id="dns-refresh"),
        pytest.param(BACKEND + "[admission.max_wait_s]\nnormal = -5\n", {}, "admission.max_wait_s.normal", id="wait"),
        pytest.param(BACKEND + "[admission]\nstale_after_s = 0\n", {}, "admission.stale_after_s", id="stale"),
        pytest.param(BACKEND + "[admission]\nkv_saturation = 1.5\n", {}, "admission.kv_saturation", id="kv"),
        pytest.param(BACKEND + "[admission]\nnormal_threshold = 2\n", {}, "admission.normal_threshold", id="thr"),
        pytest.param(BACKEND + "[admission]\nmax_queue = -1\n", {}, "admission.max_queue", id="queue"),
        pytest.param(BACKEND + "[admission]\nretry_after_s = -1\n", {}, "admission.retry_after_s", id="retry-after"),
        pytest.param(BACKEND + "[coordination]\nbackoff_max_s = 0\n", {}, "coordination.backoff_max_s", id="backoff"),
        pytest.param(BACKEND + "[coordination]\nprefix_ttl_s = -1\n", {}, "coordination.prefix_ttl_s", id="ttl"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as info:
        load(write(tmp_path, text), environ=env)
    assert names in str(info.value)


def test_environment_strings_convert_but_file_strings_do_not(tmp_path: Path) -> None:
    env = {
        "GATEWAY_PROXY__RETRIES": "0",
        "GATEWAY_FLEET__HEALTH__TIMEOUT_S": "2.5",
        "GATEWAY_ADMISSION__ENABLED": "false",
    }
    config = load(
        write(tmp_path, BACKEND + '[server]\nport = "9999"\n'), environ={"GATEWAY_SERVER__PORT": "9999", **env}
    )
    assert (config.server.port, config.proxy.retries, config.fleet.health.timeout_s) == (9999, 0, 2.5)
    assert config.admission.enabled is False
    env = {"GATEWAY_ROUTING__PRESETS__MINE__PICKER": "round_robin", "GATEWAY_ADMISSION__MAX_WAIT_S__LOW": "0"}
    config = load(write(tmp_path, BACKEND + '[[routing.presets.mine.scorers]]\ntype = "load"\n'), environ=env)
    assert (config.routing.presets["mine"].picker, config.admission.max_wait_s.low) == ("round_robin", 0.0)


def test_check_config_redacts_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    text = BACKEND.replace("http://", "http://bob:backend-secret@") + (
        '[coordination]\nredis_url = "redis://user:url-secret@redis:6379/0?password=query-secret&db=0"\n'
        'password = "pw-secret"\nsentinel_password = "sentinel-secret"\n'
    )
    assert main(["check-config", str(write(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out
    assert "redis://user:***@redis:6379/0?password=***&db=0" in out
    assert '"password": "***"' in out
    assert '"sentinel_password": "***"' in out
    assert "http://bob:***@127.0.0.1:9" in out


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
