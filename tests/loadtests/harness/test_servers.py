"""The harness's servers: the simulator's announcement is read with a bound, redis-server and a gateway start
ready and stop leaving nothing behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
import redis

from gateway.config import FleetConfig, GatewayConfig, ServerConfig
from loadtests.harness.gateway import backend_configs, start_gateway
from loadtests.harness.process_group import StartError, free_port, spawn
from loadtests.harness.redis import start_redis
from loadtests.harness.simulator import SimBackend, parse_backend, read_announcement, start_simulator


def _fake_sim(script: str) -> list[SimBackend]:
    group = spawn("fake-sim", [sys.executable, "-c", script], stdout_pipe=True)
    try:
        return read_announcement(group, timeout_s=1)
    finally:
        group.stop(grace_s=0.5)


def test_parse_backend() -> None:
    line = "sim-0 http://127.0.0.1:1 model=m profile=l4"
    assert parse_backend(line) == SimBackend("sim-0", "http://127.0.0.1:1", "m")
    assert parse_backend("loading profile l4") is None


def test_the_announcement_ends_at_ready() -> None:
    script = "print('sim-0 http://127.0.0.1:1 model=m\\nsim-1 http://127.0.0.1:2 model=m\\nready', flush=True)"
    assert [b.id for b in _fake_sim(script + "; import time; time.sleep(30)")] == ["sim-0", "sim-1"]


def test_a_silent_simulator_times_out() -> None:
    with pytest.raises(StartError, match="did not print 'ready' within 1 s"):
        _fake_sim("import time; time.sleep(30)")


def test_a_simulator_that_exits_is_reported_with_its_log() -> None:
    with pytest.raises(StartError, match=r"(?s)exited before it was ready.*no such profile"):
        _fake_sim("import sys; print('sim-0 http://x model=m', flush=True); sys.exit('no such profile')")


def test_redis_answers_then_goes_with_its_directory() -> None:
    server = start_redis()
    try:
        assert redis.Redis(port=server.port).ping()
    finally:
        server.stop()
    assert not server.group.alive()
    assert not Path(server.directory).exists()


def test_a_killed_redis_can_come_back_on_its_port_empty() -> None:
    first = start_redis()
    try:
        with redis.Redis(port=first.port) as client:
            client.set("k", "v")
    finally:
        first.kill()
    assert not first.group.alive()
    assert not Path(first.directory).exists()
    again = start_redis(port=first.port)
    try:
        with redis.Redis(port=again.port) as client:
            assert client.get("k") is None
    finally:
        again.stop()


def test_gateway_over_a_simulator_is_ready_and_stops_by_group(tmp_path: Path) -> None:
    sim = start_simulator(["--backends", "2", "--time-scale", "0.1"], expect=2)
    try:
        config = GatewayConfig(
            server=ServerConfig(port=free_port()), fleet=FleetConfig(backends=backend_configs(sim.backends))
        )
        gateway = start_gateway(config, tmp_path / "gw.toml", log_path=tmp_path / "gw.log")
        try:
            assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
        finally:
            gateway.stop()
        with pytest.raises(ProcessLookupError):
            os.killpg(gateway.group.pid, 0)  # granian's workers went with it
    finally:
        sim.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(sim.group.pid, 0)
