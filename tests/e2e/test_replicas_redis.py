"""Several gateway replicas (separate processes) sharing one real Redis, in front of simulated vLLM."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis

from gateway.config import AdmissionConfig, CoordinationConfig, GatewayConfig
from tests.processes import SimServer, free_port, gateway, gateway_config, gateway_process, simulator
from tests.redis_server import LocalRedis

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

SYSTEM = "You are the support assistant of ACME Corp. " * 40  # 1,760 characters: 6 full 256-char blocks


def replica_config(servers: list[SimServer], redis_url: str, namespace: str, **coordination: object) -> GatewayConfig:
    # These tests are about shared state, not shedding: admission would (rightly) queue 200 streams on 2 backends.
    # ``coordination`` holds CoordinationConfig keys; msgspec checks their names and types.
    shared = msgspec.convert({"redis_url": redis_url, "namespace": namespace, **coordination}, CoordinationConfig)
    return gateway_config(
        servers, free_port(), policy="prefix", coordination=shared, admission=AdmissionConfig(enabled=False)
    )


@contextlib.contextmanager
def replicas(n: int, servers: list[SimServer], redis_url: str, tmp: Path, namespace: str, **coordination: object):  # type: ignore[no-untyped-def]
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(gateway(replica_config(servers, redis_url, namespace, **coordination), tmp))
            for _ in range(n)
        ]


def fleet_in_flight(client: redis.Redis, namespace: str) -> int:
    return sum(int(v) for v in client.hgetall(f"{{gw:{namespace}}}:inflight").values())


@pytest.fixture(scope="module")
def slow_pair() -> Iterator[list[SimServer]]:
    # time_scale 3: generation runs 3x slower than an L4, so streams stay open while the test looks
    with simulator("--backends", "2", "--time-scale", "3") as servers:
        yield servers


def chat_body(model: str, user: str, max_tokens: int, stream: bool) -> dict[str, object]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}


async def hold_streams(urls: list[str], model: str, n: int, opened: asyncio.Event, release: asyncio.Event) -> int:
    """Open n streams round robin over the replicas, read a first chunk of each, hold until released."""
    count = 0

    async def one(i: int, client: httpx.AsyncClient) -> None:
        nonlocal count
        body = chat_body(model, f"question {i}", 2000, True)
        async with client.stream("POST", f"{urls[i % len(urls)]}/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            chunks = r.aiter_raw()  # kept referenced: a dropped iterator would close the stream
            await anext(chunks)
            count += 1
            if count == n:
                opened.set()
            await release.wait()  # leaving the block disconnects: the backends abort

    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return count


def test_fleet_in_flight_is_exact_across_four_replicas(
    slow_pair: list[SimServer], redis_server_url: str, tmp_path: Path
) -> None:
    ns = "exact"
    with replicas(4, slow_pair, redis_server_url, tmp_path, ns) as urls, redis.Redis.from_url(redis_server_url) as r:
        samples: list[int] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                samples.append(fleet_in_flight(r, ns))
                time.sleep(0.01)

        thread = threading.Thread(target=sampler)
        thread.start()

        async def scenario() -> None:
            opened, release = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(hold_streams(urls, slow_pair[0].model, 200, opened, release))
            await asyncio.wait_for(opened.wait(), 60)
            await asyncio.sleep(0.3)  # every reservation is in; nothing has been released yet
            plateau = fleet_in_flight(r, ns)
            release.set()
            assert await task == 200
            assert plateau == 200

        try:
            asyncio.run(scenario())
            deadline = time.monotonic() + 10
            while fleet_in_flight(r, ns) != 0:
                assert time.monotonic() < deadline, "fleet in-flight did not return to 0"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join()
        assert min(samples) >= 0
        assert max(samples) <= 200


def test_prefix_learned_on_one_replica_routes_on_another(
    slow_pair: list[SimServer], redis_server_url: str, tmp_path: Path
) -> None:
    with replicas(2, slow_pair, redis_server_url, tmp_path, "affinity") as (a, b):
        model = slow_pair[0].model
        first = httpx.post(f"{a}/v1/chat/completions", json=chat_body(model, "hello", 1, False), timeout=30)
        assert first.status_code == 200
        for i in range(5):
            again = httpx.post(f"{b}/v1/chat/completions", json=chat_body(model, f"q{i}", 1, False), timeout=30)
            assert again.headers["x-gateway-backend"] == first.headers["x-gateway-backend"]
            route = dict(p.split("=") for p in again.headers["x-gateway-route"].split("; "))
            assert route["reason"] == "affinity"
            assert float(route["cached_blocks"]) == 6  # the system prompt's blocks; the user turn differs
            # the simulated vLLM really had the prefix: it reports cached tokens
            assert again.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


def test_killed_replica_loses_its_reservations_within_the_lease(
    slow_pair: list[SimServer], redis_server_url: str, tmp_path: Path
) -> None:
    ns = "lease"
    config = replica_config(slow_pair, redis_server_url, ns, lease_ttl_s=2.0)
    with (
        gateway(config, tmp_path) as survivor,
        gateway_process(replica_config(slow_pair, redis_server_url, ns, lease_ttl_s=2.0), tmp_path) as doomed,
        redis.Redis.from_url(redis_server_url) as r,
    ):

        async def scenario() -> None:
            opened, release = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(hold_streams([doomed.url], slow_pair[0].model, 20, opened, release))
            await asyncio.wait_for(opened.wait(), 30)
            assert fleet_in_flight(r, ns) == 20
            killed_at = time.monotonic()
            doomed.kill()
            while fleet_in_flight(r, ns) != 0:
                assert time.monotonic() - killed_at < 2.0 + 1.5, "reservations outlived the lease"
                await asyncio.sleep(0.05)
            release.set()
            with contextlib.suppress(httpx.HTTPError):
                await task

        asyncio.run(scenario())
        assert httpx.get(f"{survivor}/readyz").status_code == 200


def test_redis_outage_fails_no_request_and_heals(slow_pair: list[SimServer], tmp_path: Path) -> None:
    server = LocalRedis()
    server.start()
    ns = "outage"
    try:
        with replicas(2, slow_pair, server.url, tmp_path, ns, call_timeout_s=0.1, backoff_max_s=0.2) as urls:
            model = slow_pair[0].model
            statuses: list[int] = []
            degraded_seen: list[float] = []

            def degraded(url: str) -> float:
                text = httpx.get(f"{url}/metrics").text
                line = next(x for x in text.splitlines() if x.startswith("gateway_coordination_degraded "))
                return float(line.split()[1])

            async def load(stop: asyncio.Event) -> None:
                async with httpx.AsyncClient(timeout=30) as client:

                    async def worker(i: int) -> None:
                        while not stop.is_set():
                            body = chat_body(model, f"w{i}", 4, bool(i % 2))
                            resp = await client.post(f"{urls[i % 2]}/v1/chat/completions", json=body)
                            statuses.append(resp.status_code)

                    await asyncio.gather(*(worker(i) for i in range(8)))

            async def scenario() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(load(stop))
                await asyncio.sleep(1.0)
                server.stop()
                await asyncio.sleep(1.5)
                degraded_seen.extend(await asyncio.to_thread(lambda: [degraded(u) for u in urls]))
                server.start()
                await asyncio.sleep(2.0)
                stop.set()
                await task

            asyncio.run(scenario())
            assert statuses
            assert set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200]}"
            assert degraded_seen == [1.0, 1.0]
            deadline = time.monotonic() + 5
            while any(degraded(u) != 0.0 for u in urls):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            with redis.Redis.from_url(server.url) as r:
                assert fleet_in_flight(r, ns) == 0
                assert len(r.zrange(f"{{gw:{ns}}}:replicas", 0, -1)) == 2  # both re-registered
    finally:
        server.close()
