"""The hot-path budget: at most two Redis round trips per proxied request, counted by Redis itself."""

import time
from pathlib import Path

import httpx
import pytest
import redis

from gateway.config import AdmissionConfig, CoordinationConfig
from tests.processes import free_port, gateway, gateway_config, simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

N = 60


# What a client sends by itself. INFO commandstats also counts the commands a script runs inside Redis
# (TIME, HINCRBY, ZADD...), which are part of the script's one round trip, so those are not listed here.
# HGETALL is what the control plane sends (state exchange; heartbeats run it inside their script), so
# its absence also shows that no control-plane call fell into the window.
TOP_LEVEL = {"evalsha", "eval", "script", "ping", "hgetall", "get", "set", "multi", "exec"}
HANDSHAKE = {"hello", "client"}  # once per new pooled connection, not per request


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_two_round_trips_per_request(redis_server_url: str, tmp_path: Path) -> None:
    # Heartbeats every 100 s and scrapes every 30 s: during the measured window only requests talk to Redis.
    coordination = CoordinationConfig(redis_url=redis_server_url, namespace="budget", lease_ttl_s=300)
    # A backend counts as full stale_after_s (3 s by default) after its last scrape; with scrapes 30 s apart,
    # a slow host would reach that mid-run and every request would wait, then get a 429. Admission still runs
    # (and its pick is the first EVALSHA); it only never sees a backend as stale within the test.
    admission = AdmissionConfig(stale_after_s=600)
    with (
        simulator("--backends", "2", "--time-scale", "0.1") as servers,
        gateway(
            gateway_config(
                servers,
                free_port(),
                policy="prefix",
                health={"interval_s": 30},
                coordination=coordination,
                admission=admission,
            ),
            tmp_path,
        ) as url,
        redis.Redis.from_url(redis_server_url) as r,
        httpx.Client(timeout=30) as client,
    ):
        body = {"model": servers[0].model, "max_tokens": 2, "messages": [{"role": "user", "content": "x" * 3000}]}
        client.post(f"{url}/v1/chat/completions", json=body)  # warm up: scripts loaded, connections open
        time.sleep(0.5)  # its release, which runs after the response, is in
        r.config_resetstat()
        for i in range(N):
            body["stream"] = bool(i % 2)
            assert client.post(f"{url}/v1/chat/completions", json=body).status_code == 200
        deadline = time.monotonic() + 5
        while command_calls(r).get("evalsha", 0) < 2 * N and time.monotonic() < deadline:
            time.sleep(0.01)  # the last release runs just after its response was sent
        calls = command_calls(r)
        # Each request: one EVALSHA to pick and reserve, one to release. Nothing else.
        assert {k: v for k, v in calls.items() if k in TOP_LEVEL} == {"evalsha": 2 * N}
        assert calls.get("hello", 0) <= 2
