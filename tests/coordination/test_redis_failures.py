"""Leases and outages of the Redis store, against a real redis-server that the tests stop and start."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from coordination import Observation, PickRequest, ScoreLine
from coordination.redis_store import RedisStore
from tests.redis_server import LocalRedis

pytestmark = pytest.mark.redis

LEAST = PickRequest(tuple(ScoreLine(b, 0.0, per_in_flight=1.0) for b in ("a", "b")))


@pytest.fixture
def local_redis() -> Iterator[LocalRedis]:
    server = LocalRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def client(local_redis: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(local_redis.url, socket_connect_timeout=0.2)
    yield c
    await c.aclose()


def fleet_total(store: RedisStore) -> int:
    return sum(load.in_flight for load in store.cached_loads(["a", "b"]).values())


async def test_dead_replicas_reservations_vanish_after_the_lease(client: aioredis.Redis) -> None:
    dying = RedisStore(client, namespace="t", lease_ttl_s=0.3)
    survivor = RedisStore(client, namespace="t", lease_ttl_s=5)
    await dying.start()
    await survivor.start()
    for _ in range(6):
        await dying.pick_and_reserve(LEAST)
    await survivor.heartbeat()
    assert fleet_total(survivor) == 6
    assert len(survivor.members) == 2
    # "dying" stops heartbeating (as if SIGKILLed); nobody cleans up for it
    await asyncio.sleep(0.4)
    await survivor.heartbeat()
    assert fleet_total(survivor) == 0
    assert survivor.members == [survivor.replica_id]


async def test_lapsed_lease_is_restored_from_the_ledger(client: aioredis.Redis) -> None:
    slow = RedisStore(client, namespace="t", lease_ttl_s=0.2)
    other = RedisStore(client, namespace="t", lease_ttl_s=5)
    await slow.start()
    await other.start()
    held = [await slow.pick_and_reserve(LEAST) for _ in range(3)]
    await asyncio.sleep(0.3)
    await other.heartbeat()
    assert fleet_total(other) == 0  # reaped while "slow" was paused
    await slow.heartbeat()  # back: Redis says the lease lapsed, the ledger is restored
    await other.heartbeat()
    assert fleet_total(other) == 3
    for _, reservation in held:
        await slow.release(reservation, Observation())
    await other.heartbeat()
    assert fleet_total(other) == 0


async def test_outage_degrades_then_recovers_with_correct_totals(
    local_redis: LocalRedis, client: aioredis.Redis
) -> None:
    store = RedisStore(client, namespace="t", call_timeout_s=0.2, backoff_max_s=0.2)
    await store.start()
    before = [await store.pick_and_reserve(LEAST) for _ in range(2)]
    local_redis.stop()
    during = [await store.pick_and_reserve(LEAST) for _ in range(3)]  # served locally, no error
    assert store.degraded
    await store.release(before[0][1], Observation())
    await store.release(during[0][1], Observation())
    local_redis.start()  # same port, empty: the restore must rebuild this replica's share
    for _ in range(100):
        if not store.degraded:
            break
        await asyncio.sleep(0.05)
    assert not store.degraded
    observer = RedisStore(client, namespace="t")
    await observer.start()
    assert fleet_total(observer) == 3  # 2 + 3 reserved, 2 released
    for _, reservation in [before[1], *during[1:]]:
        await store.release(reservation, Observation())
    await observer.heartbeat()
    assert fleet_total(observer) == 0
    await observer.close()
    await store.close()
