"""The TOML the harness writes decodes back (through gateway.config_loader.load) to an equal GatewayConfig."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gateway.config import (
    AdmissionConfig,
    BackendConfig,
    CoordinationConfig,
    FleetConfig,
    GatewayConfig,
    HealthConfig,
    PriorityWaits,
    RoutingConfig,
    ServerConfig,
)
from gateway.config_loader import load
from loadtests.harness.gateway_toml import config_toml, write_config
from tests.processes import SimServer, gateway_config

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


def test_a_test_gateway_config_with_coordination_and_admission_loads_back_equal(tmp_path: Path) -> None:
    servers = [SimServer("sim-0", "http://127.0.0.1:9001", "m")]
    config = gateway_config(
        servers,
        18080,
        policy="prefix",
        health={"consecutive_errors": 1000},
        coordination=CoordinationConfig(redis_url="redis://127.0.0.1:6379/0", namespace="g"),
        admission=AdmissionConfig(max_queue=4, max_wait_s=PriorityWaits(low=0.5)),
    )
    loaded = load(write_config(config, tmp_path / "gateway.toml"), environ={})
    assert loaded == config
    assert (loaded.coordination.namespace, loaded.admission.max_wait_s.low) == ("g", 0.5)
    assert loaded.fleet.health.interval_s == 0.2  # the tests' fast scrapes stay under the caller's health keys


def test_a_misspelt_health_key_fails_at_once() -> None:
    servers = [SimServer("sim-0", "http://127.0.0.1:9001", "m")]
    with pytest.raises(msgspec.ValidationError, match="consecutive_eror"):
        gateway_config(servers, 18080, health={"consecutive_eror": 1})
