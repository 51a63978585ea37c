"""The TOML the harness writes decodes back (through gateway.config_loader.load) to an equal GatewayConfig."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.config import (
    BackendConfig,
    ConfigError,
    FleetConfig,
    GatewayConfig,
    HealthConfig,
    RoutingConfig,
    ServerConfig,
    decode,
)
from gateway.config_loader import load
from loadtests.harness.gateway_toml import config_toml, write_config
from tests.processes import SimServer, gateway_toml

BACKENDS = [BackendConfig(id="sim-0", url="http://127.0.0.1:9001", models=["m"])]


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(GatewayConfig(fleet=FleetConfig(backends=BACKENDS)), id="backends-only"),
        pytest.param(
            GatewayConfig(
                server=ServerConfig(port=18080, log_level="WARNING"),
                fleet=FleetConfig(backends=BACKENDS, health=HealthConfig(interval_s=0.2)),
                routing=RoutingConfig(policy="round_robin"),
            ),
            id="policy-backends-health",
        ),
    ],
)
def test_written_toml_loads_back_equal(config: GatewayConfig, tmp_path: Path) -> None:
    path = write_config(config, tmp_path / "gateway.toml")
    assert load(path, environ={}) == config


def test_defaults_are_omitted() -> None:
    text = config_toml(GatewayConfig(routing=RoutingConfig(policy="round_robin")))
    assert text.strip() == '[routing]\npolicy = "round_robin"'


def test_a_none_that_is_not_the_default_is_refused() -> None:
    config = GatewayConfig(fleet=FleetConfig(backends=BACKENDS), routing=RoutingConfig(session_header=None))
    with pytest.raises(ValueError, match="session_header"):
        config_toml(config)


def test_raw_toml_extra_is_decoded_into_the_config_not_pasted() -> None:
    servers = [SimServer("sim-0", "http://127.0.0.1:9001", "m")]
    text = gateway_toml(servers, 18080, extra='[coordination]\nnamespace = "g"\n[admission.max_wait_s]\nlow = 0.5\n')
    config = load_toml(text)
    assert (config.coordination.namespace, config.admission.max_wait_s.low) == ("g", 0.5)
    assert config.fleet.health.interval_s == 0.2  # the tests' fast scrapes stay under the extra
    with pytest.raises(ConfigError, match="namespce"):
        gateway_toml(servers, 18080, extra='[coordination]\nnamespce = "g"\n')


def load_toml(text: str) -> GatewayConfig:
    return decode(tomllib.loads(text))
