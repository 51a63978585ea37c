from pathlib import Path

import pytest

from gateway.config import ConfigError, load

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
        "GATEWAY_ROUTING__POLICY": "cache_aware",
        "GATEWAY_ROUTING__PARAMS": '{"cache_aware": {"queue_threshold": 2}}',
        "GATEWAY_SERVER__ACCESS_LOG": "true",
    }
    config = load(write(tmp_path, BACKEND + "[server]\nport = 1\n"), environ=env)
    assert config.server.port == 9999
    assert config.server.access_log is True
    assert config.coordination.redis_url == "redis://127.0.0.1:6379/0"
    assert config.routing.params == {"cache_aware": {"queue_threshold": 2}}


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
            BACKEND + '[routing]\npolicy = "cache_aware"\n[routing.params.cache_aware]\nthreshold = 1\n',
            {},
            "routing.params.cache_aware",
            id="unknown-policy-param",
        ),
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
