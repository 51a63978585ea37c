"""Overload a small simulated fleet through 1 and 4 replicas sharing Redis: a fleet-wide shedding order."""

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import AdmissionConfig, CoordinationConfig, GatewayConfig, PriorityWaits
from tests.processes import SimServer, free_port, gateway, gateway_config, simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

# Arrivals/s per priority: 20/s offered to a fleet that serves about 13/s (8 slots, ~0.6 s per request).
RATES = {"high": 4.0, "normal": 8.0, "low": 8.0}
DURATION_S = 20.0
ADMISSION = AdmissionConfig(
    backend_capacity=4,
    low_threshold=0.5,
    normal_threshold=0.85,
    recheck_s=0.02,
    stale_after_s=2.0,
    max_wait_s=PriorityWaits(high=5.0, normal=1.0, low=0.5),
)


@pytest.fixture(scope="module")
def small_fleet() -> Iterator[list[SimServer]]:
    with simulator("--backends", "2", "--time-scale", "1") as servers:
        yield servers


def configs(servers: list[SimServer], redis_url: str, namespace: str, n: int) -> list[GatewayConfig]:
    coordination = CoordinationConfig(redis_url=redis_url, namespace=namespace)
    return [
        gateway_config(
            servers,
            free_port(),
            policy="least_queue",
            health={"interval_s": 0.1},
            coordination=coordination,
            admission=ADMISSION,
        )
        for _ in range(n)
    ]


async def overload(urls: list[str], model: str) -> dict[str, Counter[int]]:
    """Open loop: Poisson arrivals per priority (fixed seed), so every run offers the same load."""
    rng = random.Random(42)
    arrivals = []
    for priority, rate in RATES.items():
        t = 0.0
        while (t := t + rng.expovariate(rate)) < DURATION_S:
            arrivals.append((t, priority))
    arrivals.sort()
    results: dict[str, Counter[int]] = {p: Counter() for p in ("high", "normal", "low")}
    retry_after_missing = 0

    async def one(i: int, at: float, priority: str, client: httpx.AsyncClient) -> None:
        nonlocal retry_after_missing
        await asyncio.sleep(at)
        body = {"model": model, "max_tokens": 40, "messages": [{"role": "user", "content": f"req {i}"}]}
        response = await client.post(
            f"{urls[i % len(urls)]}/v1/chat/completions", json=body, headers={"x-priority": priority}
        )
        results[priority][response.status_code] += 1
        if response.status_code == 429:
            retry_after_missing += "retry-after" not in response.headers
            assert response.json()["error"]["code"] == "fleet_overloaded"

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=400)) as client:
        tasks = [one(i, at, p, client) for i, (at, p) in enumerate(arrivals)]
        await asyncio.wait_for(asyncio.gather(*tasks), DURATION_S + 20)  # nothing hangs
    assert retry_after_missing == 0
    return results


def shed_rate(counts: Counter[int]) -> float:
    return counts[429] / sum(counts.values())


def run(servers: list[SimServer], redis_url: str, tmp: Path, namespace: str, n: int) -> dict[str, Counter[int]]:
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gateway(c, tmp)) for c in configs(servers, redis_url, namespace, n)]
        return asyncio.run(overload(urls, servers[0].model))


def test_shedding_order_and_one_vs_four_replicas(
    small_fleet: list[SimServer], redis_server_url: str, tmp_path: Path
) -> None:
    four = run(small_fleet, redis_server_url, tmp_path, "shed4", 4)
    one = run(small_fleet, redis_server_url, tmp_path, "shed1", 1)
    print("4 replicas:", dict(four), "1 replica:", dict(one))
    for results in (four, one):
        assert all(set(c) <= {200, 429} for c in results.values()), results
        assert results["high"][200] / sum(results["high"].values()) >= 0.99
        assert shed_rate(results["low"]) > shed_rate(results["normal"]) >= shed_rate(results["high"])
        assert shed_rate(results["low"]) > 0.2  # the fleet really was overloaded
    for priority in ("high", "normal", "low"):
        assert abs(shed_rate(four[priority]) - shed_rate(one[priority])) <= 0.05, (priority, four, one)
