"""The processes one experiment cell needs: a simulated fleet, gateway replicas, and (once) a redis-server.

Starting, waiting and stopping is ``loadtests.harness`` (own process group, bounded waits, SIGTERM then
SIGKILL of the group); this module adapts it to the runner's event loop (blocking parts in threads) and
adds what only a load test needs: replicas ready only once they see every backend healthy, namespace
cleanup in a Redis the run does not own, and CPU accounting per process group from /proc.
Output goes to log files the caller names, so the load generator's terminal stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import CoordinationConfig, FleetConfig, GatewayConfig, HealthConfig, RoutingConfig, ServerConfig
from loadtests.harness.gateway import GatewayServer, backend_configs
from loadtests.harness.gateway import spawn_gateway as harness_spawn_gateway
from loadtests.harness.process_group import START_TIMEOUT_S, ProcessGroup, http_ok, poll_until
from loadtests.harness.process_group import StartError as StartError  # re-exported: the runner catches it
from loadtests.harness.process_group import free_port as free_port  # re-exported: one definition
from loadtests.harness.redis import RedisProcess, redis_version, start_redis_async
from loadtests.harness.simulator import SimBackend, start_simulator_async

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

Backend = SimBackend  # the runner's name for an announced simulator server


@dataclass
class Child:
    """A harness process group with the awaitable stop the runner gathers over (the stop blocks: a thread)."""

    group: ProcessGroup

    @property
    def name(self) -> str:
        return self.group.name

    @property
    def pid(self) -> int:
        return self.group.pid

    @property
    def log_path(self) -> Path:
        return self.group.log_path

    def alive(self) -> bool:
        return self.group.alive()

    async def stop(self) -> None:
        """SIGTERM the group, wait (bounded), then SIGKILL it; never raises."""
        await asyncio.to_thread(self.group.stop)


# ---- simulator ---------------------------------------------------------------------------------------


async def start_simulator(
    backends: int, profile: str, time_scale: float, seed: int, log_path: Path | None, extra: list[str] | None = None
) -> tuple[Child, list[Backend]]:
    """``loadtest sim`` on free ports; returns once it printed ``ready`` (bounded by START_TIMEOUT_S)."""
    args = [
        "--backends", str(backends), "--base-port", "0", "--profile", profile, "--time-scale", repr(time_scale),
        "--seed", str(seed), *(extra or []),
    ]  # fmt: skip
    sim = await start_simulator_async(args, log_path=log_path, expect=backends)
    return Child(sim.group), sim.backends


# ---- gateway -------------------------------------------------------------------------------------------


def gateway_config(
    backends: list[Backend],
    port: int,
    policy: str,
    *,
    redis_url: str | None,
    namespace: str,
    health_interval_s: float | None = None,
) -> GatewayConfig:
    """One replica: this policy, these backends, Redis state if a URL is given."""
    health = HealthConfig() if health_interval_s is None else HealthConfig(interval_s=health_interval_s)
    coordination = CoordinationConfig(redis_url=redis_url, namespace=namespace) if redis_url else CoordinationConfig()
    return GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=port, log_level="WARNING"),
        routing=RoutingConfig(policy=policy),
        fleet=FleetConfig(backends=backend_configs(backends), health=health),
        coordination=coordination,
    )


@dataclass
class Gateway:
    child: Child
    url: str


def spawn_gateway(config: GatewayConfig, port: int, config_path: Path, log_path: Path | None) -> Gateway:
    """Start a replica on ``config`` (written to ``config_path``); ``port`` must be ``config.server.port``."""
    assert config.server.port == port, f"port {port} is not the config's {config.server.port}"
    server: GatewayServer = harness_spawn_gateway(config, config_path, log_path=log_path)
    return Gateway(Child(server.group), server.url)


def healthy_backends(metrics_text: str) -> int:
    """How many backends a gateway's /metrics reports routable (``gateway_backend_healthy`` == 1)."""
    count = 0
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "gateway_backend_healthy":
            count += sum(1 for s in family.samples if s.value >= 1)
    return count


def _wait_one_ready(g: Gateway, backends: int, deadline: float) -> str | None:
    """Block until ``g`` is ready (else StartError) and sees every backend healthy (else a warning)."""
    group = g.child.group
    if not poll_until(group, http_ok(f"{g.url}/readyz"), deadline - time.monotonic()):
        raise StartError(f"gateway {g.url} did not get ready in time (log: {group.log_path}):\n{group.stderr_tail()}")
    seen = 0

    def sees_all() -> bool:
        nonlocal seen
        with contextlib.suppress(httpx.HTTPError):
            seen = healthy_backends(httpx.get(f"{g.url}/metrics", timeout=2).text)
        return seen >= backends

    if poll_until(group, sees_all, max(0.0, deadline - time.monotonic())):
        return None
    return f"gateway {g.url} saw {seen}/{backends} backends healthy at start"


async def wait_gateways_ready(
    session: aiohttp.ClientSession, gateways: list[Gateway], backends: int, timeout_s: float = START_TIMEOUT_S
) -> list[str]:
    """Wait until each replica answers /readyz 200 and sees every backend healthy (one bounded deadline).

    Returns warnings (a replica that got ready but did not see every backend healthy in time). ``session``
    is unused (the probes are the harness's, in a thread) and kept for the runner's call.
    """
    del session
    deadline = time.monotonic() + timeout_s
    warnings: list[str] = []
    for g in gateways:
        warning = await asyncio.to_thread(_wait_one_ready, g, backends, deadline)
        if warning:
            warnings.append(warning)
    return warnings


# ---- redis ---------------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """The run's own redis-server, as the runner reports and stops it."""

    process: RedisProcess
    version: str

    @property
    def child(self) -> Child:
        return Child(self.process.group)

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def binary(self) -> str:
        return self.process.binary

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop)


async def start_redis(log_path: Path | None) -> RedisServer:
    process = await start_redis_async(log_path=log_path)
    return RedisServer(process, await asyncio.to_thread(redis_version, process.binary))


async def delete_namespace(url: str, namespace: str, max_keys: int = 100_000) -> int:
    """Delete a cell's coordination keys (``{gw:NAMESPACE}:*``) from a Redis the run did not start."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    deleted = 0
    try:
        batch: list[str] = []
        async for key in client.scan_iter(match=f"{{gw:{namespace}}}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.delete(*batch)
                batch = []
            if deleted + len(batch) >= max_keys:
                break
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


# ---- CPU accounting ------------------------------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    return data[data.rfind(")") + 2 :].split()


def group_cpu_seconds(pgids: set[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by the live processes of each process group.

    Children that already exited are not counted (granian's workers live as long as the replica does).
    """
    totals = dict.fromkeys(pgids, 0.0)
    if not pgids or not os.path.isdir("/proc"):
        return totals
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat_fields(int(entry))
        if fields is None or len(fields) < 13:
            continue
        pgid = int(fields[2])  # field 5 of stat: pgrp (fields here start at field 3, state)
        if pgid in totals:
            totals[pgid] += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return totals


def host_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            first = f.readline().split()
    except OSError:
        return None
    values = [float(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def describe_machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count() or 0,
        "cpu_model": model,
        "loadavg": load,
        "python": sys.version.split()[0],
    }
