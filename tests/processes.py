"""Servers the end-to-end tests start: the harness's (``loadtests.harness``) as context managers.

Each runs on 127.0.0.1 free ports in its own process group and is stopped by group on exit, whatever
happened. A gateway's config is a ``GatewayConfig`` (``gateway_config``), written by encoding it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gateway.config import (
    AdmissionConfig,
    CoordinationConfig,
    FleetConfig,
    GatewayConfig,
    HealthConfig,
    RoutingConfig,
    ServerConfig,
)
from loadtests.harness.gateway import GatewayServer, backend_configs, start_gateway
from loadtests.harness.process_group import free_port as free_port  # one definition, re-exported for the tests
from loadtests.harness.simulator import SimBackend, Simulator, start_simulator

START_TIMEOUT_S = 30.0
TEST_HEALTH = {"interval_s": 0.2}
"""Scrapes every 0.2 s: the tests see a backend's state change within a few hundred ms."""

SimServer = SimBackend  # an announced simulator server: (id, url, model)


@dataclass
class SimProcess:
    sim: Simulator

    @property
    def servers(self) -> list[SimServer]:
        return self.sim.backends

    def kill(self) -> None:
        """SIGKILL the simulator's process group: all its servers vanish at once."""
        self.sim.kill()


@contextlib.contextmanager
def simulator_process(*args: str) -> Iterator[SimProcess]:
    """``loadtest sim ARGS`` (free ports unless ``--base-port``) until it prints ``ready``; stopped on exit."""
    sim = start_simulator(args, timeout_s=START_TIMEOUT_S)
    try:
        yield SimProcess(sim)
    finally:
        sim.stop()


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[list[SimServer]]:
    with simulator_process(*args) as sim:
        yield sim.servers


def gateway_config(
    servers: list[SimServer],
    port: int,
    *,
    policy: str | None = None,
    health: Mapping[str, float] | None = None,
    workers: int | None = None,
    coordination: CoordinationConfig | None = None,
    admission: AdmissionConfig | None = None,
) -> GatewayConfig:
    """A gateway over these servers; health checks every 0.2 s unless ``health`` (HealthConfig keys) says
    otherwise. ``health`` is converted by msgspec, so a misspelt key fails here."""
    server = ServerConfig(port=port) if workers is None else ServerConfig(port=port, workers=workers)
    return GatewayConfig(
        server=server,
        routing=RoutingConfig() if policy is None else RoutingConfig(policy=policy),
        fleet=FleetConfig(
            backends=backend_configs(servers), health=msgspec.convert({**TEST_HEALTH, **(health or {})}, HealthConfig)
        ),
        coordination=coordination or CoordinationConfig(),
        admission=admission or AdmissionConfig(),
    )


@contextlib.contextmanager
def gateway_process(
    config: GatewayConfig, tmp: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[GatewayServer]:
    """``gateway serve`` under granian with this config, ready (/readyz).
    With ``log``, the gateway's output (its JSON log lines) goes to that file and stays there."""
    path = tmp / f"gateway-{config.server.port}.toml"
    server = start_gateway(config, path, env=env, log_path=log, timeout_s=START_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def gateway(
    config: GatewayConfig, tmp: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    """``gateway serve`` under granian with this config; yields its base URL once /readyz says ready."""
    with gateway_process(config, tmp, env, log) as g:
        yield g.url
