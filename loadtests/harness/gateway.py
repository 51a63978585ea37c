"""``gateway serve`` under granian as a subprocess, from a ``GatewayConfig`` written to a file.

The config is the struct, never a string: its TOML comes from ``config_toml`` and the URL to probe from
``config.server``, so what the process reads and where the harness looks cannot disagree. Ready means
``/readyz`` answers 200 (the gateway's own notion: config loaded, fleet known).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.config import BackendConfig, GatewayConfig
from loadtests.harness.gateway_toml import write_config
from loadtests.harness.process_group import START_TIMEOUT_S, ProcessGroup, http_ok, spawn, wait_ready
from loadtests.harness.simulator import SimBackend


def backend_configs(backends: list[SimBackend]) -> list[BackendConfig]:
    """``[[fleet.backends]]`` for announced simulator servers, each with the one model it serves."""
    return [BackendConfig(id=b.id, url=b.url, models=[b.model] if b.model else []) for b in backends]


def base_url(config: GatewayConfig) -> str:
    return f"http://{config.server.host}:{config.server.port}"


@dataclass
class GatewayServer:
    group: ProcessGroup
    url: str
    config_path: Path

    def stop(self) -> None:
        self.group.stop()

    def kill(self) -> None:
        """SIGKILL the whole group (granian's main process and its workers), like a pod kill."""
        self.group.kill()


def spawn_gateway(
    config: GatewayConfig, config_path: Path, *, env: dict[str, str] | None = None, log_path: Path | None = None
) -> GatewayServer:
    """Write ``config`` to ``config_path`` and start ``gateway serve`` on it; not yet waited for."""
    write_config(config, config_path)
    command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)]
    group = spawn(f"gateway:{config.server.port}", command, env=env, log_path=log_path)
    return GatewayServer(group, base_url(config), config_path)


def wait_gateway_ready(gateway: GatewayServer, timeout_s: float = START_TIMEOUT_S) -> None:
    wait_ready(gateway.group, http_ok(f"{gateway.url}/readyz"), timeout_s)


def start_gateway(
    config: GatewayConfig,
    config_path: Path,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> GatewayServer:
    """``spawn_gateway`` then wait for /readyz; stopped again if it does not get ready."""
    gateway = spawn_gateway(config, config_path, env=env, log_path=log_path)
    try:
        wait_gateway_ready(gateway, timeout_s)
    except BaseException:
        gateway.stop()
        raise
    return gateway
