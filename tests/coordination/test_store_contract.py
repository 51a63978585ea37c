"""One contract, every store: in process, Redis (a real one) and Redis behind the failover wrapper behave alike."""

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from coordination import InMemoryStore, Observation, OverCapacity, PickRequest, ScoreLine, evaluate
from coordination.base import CoordinationStore
from coordination.failover import FailoverStore
from coordination.redis_store import RedisStore

BACKENDS = ("a", "b", "c")
LEAST = PickRequest(tuple(ScoreLine(b, 0.0, per_in_flight=1.0) for b in BACKENDS))

StoreFactory = Callable[[], CoordinationStore]


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis), pytest.param("failover", marks=pytest.mark.redis)]
)
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Yields a factory: stores made by it share one fleet (one Redis), like replicas do."""
    made: list[CoordinationStore] = []
    clients: list[aioredis.Redis] = []
    shared_memory = InMemoryStore()
    if request.param in ("redis", "failover"):
        url = request.getfixturevalue("clean_redis_url")
        wrapped = request.param == "failover"

        def factory() -> CoordinationStore:
            client = aioredis.Redis.from_url(url)
            clients.append(client)
            shared = RedisStore(client, namespace="test", call_timeout_s=2.0)
            store: CoordinationStore = FailoverStore(shared, InMemoryStore()) if wrapped else shared
            made.append(store)
            return store
    else:

        def factory() -> CoordinationStore:
            return shared_memory

    yield factory
    for store in made:
        await store.close()
    for client in clients:
        await client.aclose()


async def test_concurrent_callers_never_double_book(new_store: StoreFactory) -> None:
    stores = [new_store() for _ in range(4)]  # four replicas of one fleet
    for store in stores:
        await store.start()

    async def one(store: CoordinationStore) -> str:
        pick, _ = await store.pick_and_reserve(LEAST)
        return pick.backend_id

    picks = await asyncio.gather(*(one(stores[i % 4]) for i in range(120)))
    # every pick saw the reservations before it: the spread is exact, never 2 on one while another has 0
    assert {b: picks.count(b) for b in BACKENDS} == {"a": 40, "b": 40, "c": 40}


async def test_admission_limit_lets_exactly_the_limit_through(new_store: StoreFactory) -> None:
    stores = [new_store() for _ in range(4)]
    for store in stores:
        await store.start()
    # 2 requests' worth of load already there that the store does not count (outside_load)
    limited = PickRequest(LEAST.lines, admit_max_load=12.0, outside_load=(2.0, 0.0, 0.0))

    async def one(store: CoordinationStore) -> bool:
        try:
            await store.pick_and_reserve(limited)
        except OverCapacity:
            return False
        return True

    results = await asyncio.gather(*(one(stores[i % 4]) for i in range(50)))
    assert sum(results) == 10
    assert sum(load.in_flight for load in stores[0].cached_loads(BACKENDS).values()) <= 10


async def test_counts_return_to_zero_and_release_is_idempotent(new_store: StoreFactory) -> None:
    store = new_store()
    await store.start()
    held = [await store.pick_and_reserve(LEAST) for _ in range(7)]
    for _, reservation in held:
        await store.release(reservation, Observation())
        await store.release(reservation, Observation())  # twice: must not go negative
    pick, reservation = await store.pick_and_reserve(LEAST)
    assert pick.in_flight == 0
    await store.release(reservation, Observation())
    assert all(load.in_flight == 0 for load in store.cached_loads(BACKENDS).values())


async def test_moving_averages_are_shared(new_store: StoreFactory) -> None:
    a, b = new_store(), new_store()
    await a.start()
    await b.start()
    only_a = PickRequest((ScoreLine("a", 0.0),))
    for ttft in (1.0, 3.0):
        _, reservation = await a.pick_and_reserve(only_a)
        await a.release(reservation, Observation(ttft_s=ttft, tpot_s=ttft / 100))
    await b.pick_and_reserve(only_a)  # b's view is refreshed by its own round trip
    assert b.cached_loads(["a"])["a"].ttft_ewma_s == pytest.approx(0.2 * 3.0 + 0.8 * 1.0)


async def test_prefix_learned_by_one_replica_is_used_by_another(new_store: StoreFactory) -> None:
    a, b = new_store(), new_store()
    await a.start()
    await b.start()
    blocks = ("h1", "h2", "h3")
    affinity = PickRequest(tuple(ScoreLine(x, 1.0, per_cached_block=0.5) for x in BACKENDS), prefix_blocks=blocks)
    first, _ = await a.pick_and_reserve(affinity)
    assert first.cached_blocks == 0
    second, _ = await b.pick_and_reserve(affinity)
    assert (second.backend_id, second.cached_blocks) == (first.backend_id, 3)
    longer = PickRequest(affinity.lines, prefix_blocks=(*blocks, "h4"))
    third, _ = await b.pick_and_reserve(longer)
    assert (third.backend_id, third.cached_blocks) == (first.backend_id, 3)


async def test_prefix_index_is_capped_per_backend(new_store: StoreFactory) -> None:
    store = new_store()
    await store.start()
    line = (ScoreLine("a", 0.0, per_cached_block=1.0),)

    async def learn(*blocks: str) -> int:
        pick, _ = await store.pick_and_reserve(PickRequest(line, prefix_blocks=blocks, prefix_caps=(4,)))
        await asyncio.sleep(0.003)  # the Redis index orders by time in ms
        return pick.cached_blocks

    assert await learn("x1", "x2", "x3") == 0
    assert await learn("y1", "y2", "y3") == 0
    # 6 entries, cap 4: the older chain lost its tail (x2, x3), the head x1 stays
    assert await learn("x1") == 1
    assert await learn("x1", "x2") == 1  # x2 comes back and pushes out the least recent entry, y3
    assert await learn("y1", "y2", "y3") == 2


@pytest.mark.parametrize("seed", range(5))
async def test_store_agrees_with_the_reference_evaluation(new_store: StoreFactory, seed: int) -> None:
    rng = random.Random(seed)
    store = new_store()
    await store.start()
    in_flight = {b: 0 for b in BACKENDS}
    for _ in range(30):
        request = PickRequest(
            tuple(
                ScoreLine(b, rng.uniform(0, 2), rng.uniform(0, 1), rng.uniform(0, 0.5), rng.choice([0, 0, 3]))
                for b in rng.sample(BACKENDS, 3)
            ),
            guard_eps=rng.choice([None, 0.2, 1.0]),
            guard_slack=rng.choice([0.0, 1.5]),
        )
        expected = evaluate(request, in_flight, {})
        pick, _ = await store.pick_and_reserve(request)
        assert (pick.backend_id, pick.guarded, pick.in_flight) == (
            expected.backend_id,
            expected.guarded,
            expected.in_flight,
        )
        assert pick.score == pytest.approx(expected.score)
        in_flight[pick.backend_id] += 1
