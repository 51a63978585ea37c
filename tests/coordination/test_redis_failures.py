"""Leases and outages, against a real redis-server that the tests stop, pause and start again.

The plain ``RedisStore`` raises on failure; ``FailoverStore`` (Redis first, the replica's own
``InMemoryStore`` while Redis is away) is what keeps requests served and puts the counts right afterwards.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from coordination import CoordinationError, InMemoryStore, Observation, PickRequest, Reservation, ScoreLine
from coordination.failover import FailoverStore
from coordination.redis_store import RedisStore
from tests.redis_server import LocalRedis

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]

LEAST = PickRequest(tuple(ScoreLine(b, 0.0, per_in_flight=1.0) for b in ("a", "b")))
# three cached blocks outweigh two requests of load: the prefix's backend keeps winning
AFFINITY = tuple(ScoreLine(b, 0.0, per_in_flight=1.0, per_cached_block=1.0) for b in ("a", "b"))


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


def failover(client: aioredis.Redis) -> FailoverStore:
    shared = RedisStore(client, namespace="t", call_timeout_s=0.2)
    return FailoverStore(shared, InMemoryStore(replica_id=shared.replica_id), backoff_max_s=0.2)


async def in_redis(client: aioredis.Redis) -> tuple[dict[str, int], dict[str, int]]:
    """Redis' own counts: fleet in-flight per backend, and per ``replica|backend``."""
    inflight = await client.hgetall("{gw:t}:inflight")
    held = await client.hgetall("{gw:t}:held")
    return (
        {_text(k): int(v) for k, v in inflight.items() if int(v)},
        {_text(k): int(v) for k, v in held.items() if int(v)},
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def until_recovered(store: FailoverStore, within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.02)):
        if not store.degraded:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the store did not leave degraded mode")


async def release_all(store: FailoverStore, held: list[Reservation]) -> None:
    for reservation in held:
        await store.release(reservation, Observation())


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


async def test_the_plain_store_raises(local_redis: LocalRedis, client: aioredis.Redis) -> None:
    store = RedisStore(client, namespace="t", call_timeout_s=0.2)
    await store.start()
    local_redis.stop()
    with pytest.raises(CoordinationError, match="redis pick_and_reserve"):
        await store.pick_and_reserve(LEAST)
    with pytest.raises(CoordinationError, match="redis heartbeat"):
        await store.heartbeat()
    assert not store.degraded


async def test_outage_mid_traffic_serves_locally_with_prefix_affinity(
    local_redis: LocalRedis, client: aioredis.Redis
) -> None:
    store = failover(client)
    await store.start()
    before = [(await store.pick_and_reserve(LEAST))[1] for _ in range(4)]

    async def traffic() -> list[Reservation]:
        return [(await store.pick_and_reserve(LEAST))[1] for _ in range(20)]

    running = asyncio.create_task(traffic())
    await asyncio.sleep(0)
    local_redis.stop()  # while requests are being picked
    during = await running  # not one of them failed
    assert store.degraded
    assert store.live_members() == []
    assert await store.exchange("backends", {"a": b"mine"}) == {"a": b"mine"}

    # a prefix first seen during the outage is learned locally and attracts the next request with it
    blocks = ("p1", "p2", "p3")
    first, r1 = await store.pick_and_reserve(PickRequest(AFFINITY, prefix_blocks=blocks))
    assert first.cached_blocks == 0
    second, r2 = await store.pick_and_reserve(PickRequest(AFFINITY, prefix_blocks=blocks))
    assert (second.backend_id, second.cached_blocks) == (first.backend_id, 3)
    third, r3 = await store.pick_and_reserve(PickRequest(AFFINITY, prefix_blocks=(*blocks, "p4")))
    assert (third.backend_id, third.cached_blocks) == (first.backend_id, 3)
    await release_all(store, [*before, *during, r1, r2, r3])
    await store.close()


async def test_redis_restarted_empty_gets_exactly_the_open_reservations(
    local_redis: LocalRedis, client: aioredis.Redis
) -> None:
    store = failover(client)
    await store.start()
    before = [(await store.pick_and_reserve(LEAST))[1] for _ in range(4)]
    local_redis.stop()
    during = [(await store.pick_and_reserve(LEAST))[1] for _ in range(5)]  # served locally, no error
    assert store.degraded
    await release_all(store, [before[0], during[0]])  # one of each while Redis is away
    local_redis.start()  # same port, empty: the re-sync rebuilds this replica's share
    await until_recovered(store)

    inflight, held = await in_redis(client)
    assert sum(inflight.values()) == 7  # 4 + 5 reserved, 2 released
    assert inflight == dict(store.open_reservations())
    assert held == {f"{store.replica_id}|{b}": n for b, n in inflight.items()}
    assert store.fallback.cached_loads(["a", "b"]) == InMemoryStore().cached_loads(["a", "b"])  # all moved
    # releases of reservations from before and from during the outage both reach Redis now
    await release_all(store, [*before[1:], *during[1:]])
    assert await in_redis(client) == ({}, {})
    await store.close()


async def test_redis_paused_keeps_its_counts_and_nothing_is_counted_twice(
    local_redis: LocalRedis, client: aioredis.Redis
) -> None:
    other = failover(client)  # a second replica of the fleet, whose counts must survive untouched
    store = failover(client)
    await other.start()
    await store.start()
    theirs = [(await other.pick_and_reserve(LEAST))[1] for _ in range(3)]
    before = [(await store.pick_and_reserve(LEAST))[1] for _ in range(6)]
    process = local_redis._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # Redis hangs: calls time out, its data stays
    try:
        during = [(await store.pick_and_reserve(LEAST))[1] for _ in range(4)]
        await release_all(store, [*before[:2], during[0]])
        assert store.degraded
    finally:
        os.kill(process.pid, signal.SIGCONT)
    await until_recovered(store)

    inflight, held = await in_redis(client)
    mine = {k.split("|")[1]: n for k, n in held.items() if k.startswith(f"{store.replica_id}|")}
    assert mine == dict(store.open_reservations())
    assert sum(mine.values()) == 7  # 6 + 4 reserved, 3 released: not 4 + 3 + 7
    assert sum(inflight.values()) == 7 + 3  # the other replica's 3 are still there
    await release_all(store, [*before[2:], *during[1:]])
    await release_all(other, theirs)
    assert await in_redis(client) == ({}, {})
    await store.close()
    await other.close()


async def test_retries_are_capped_by_backoff_max(local_redis: LocalRedis, client: aioredis.Redis) -> None:
    store = failover(client)  # backoff_max_s = 0.2
    local_redis.stop()
    await store.start()  # Redis away from the start: no exception, served locally
    pick, reservation = await store.pick_and_reserve(LEAST)
    assert store.degraded
    assert pick.backend_id == "a"
    await asyncio.sleep(1.5)  # uncapped doubling from 50 ms would be waiting 1.6 s by now
    local_redis.start()
    await until_recovered(store, within_s=0.6)
    assert await in_redis(client) == ({"a": 1}, {f"{store.replica_id}|a": 1})
    assert store.live_members() == [store.replica_id]
    await store.release(reservation, Observation())
    assert await in_redis(client) == ({}, {})
    await store.close()


async def test_steady_traffic_through_outage_and_recovery_leaves_exact_counts(
    local_redis: LocalRedis, client: aioredis.Redis
) -> None:
    store = failover(client)
    await store.start()
    stop = asyncio.Event()
    kept: list[Reservation] = []

    async def worker(i: int) -> None:
        while not stop.is_set():
            _, reservation = await store.pick_and_reserve(LEAST)
            await asyncio.sleep(0.003 * (i % 4))
            if i % 3 == 0 and len(kept) < 12:
                kept.append(reservation)  # still open at the end
            else:
                await store.release(reservation, Observation())

    workers = [asyncio.create_task(worker(i)) for i in range(9)]
    await asyncio.sleep(0.2)
    local_redis.stop()
    await asyncio.sleep(0.3)
    assert store.degraded
    local_redis.start()
    await until_recovered(store)  # reservations opened and closed all through the re-sync
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*workers)

    inflight, _ = await in_redis(client)
    assert inflight == dict(store.open_reservations())
    assert sum(inflight.values()) == len(kept)
    await release_all(store, kept)
    assert await in_redis(client) == ({}, {})
    await store.close()


async def test_picks_cut_off_by_cancellation_hold_nothing_after_the_next_heartbeat(client: aioredis.Redis) -> None:
    """A client leaving cancels its pick wherever it is; Redis may have run the script by then. Whatever the
    moment, once the next heartbeat has run Redis counts exactly what the ledger holds."""
    store = RedisStore(client, namespace="t")
    await store.start()
    kept = [(await store.pick_and_reserve(LEAST))[1] for _ in range(2)]
    for spins in range(12):  # cancel after 0, 1, 2, ... loop iterations: before sending, in flight, replied
        task = asyncio.ensure_future(store.pick_and_reserve(LEAST))
        for _ in range(spins):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not task.cancelled():
            kept.append(task.result()[1])  # it finished first: a real reservation, held
    await store.heartbeat()
    inflight, held = await in_redis(client)
    assert sum(inflight.values()) == len(kept) == sum(store.open_reservations().values())
    assert sum(held.values()) == len(kept)
    for reservation in kept:
        await store.release(reservation, Observation())
    assert await in_redis(client) == ({}, {})
    await store.close()
