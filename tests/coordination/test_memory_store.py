"""The store contract on the in-process store (the Redis store joins this suite in its own issue)."""

import asyncio

import pytest

from coordination import InMemoryStore, Observation, PickRequest, ScoreLine

BACKENDS = ["a", "b", "c"]
# score = in_flight: the least busy backend wins, ties to the first line
least_in_flight = PickRequest(tuple(ScoreLine(b, 0.0, per_in_flight=1.0) for b in BACKENDS))
only_a = PickRequest((ScoreLine("a", 0.0),))


async def test_concurrent_pick_and_reserve_never_double_books() -> None:
    store = InMemoryStore()

    async def one() -> str:
        await asyncio.sleep(0)
        pick, _ = await store.pick_and_reserve(least_in_flight)
        return pick.backend_id

    picks = await asyncio.gather(*(one() for _ in range(300)))
    assert {b: picks.count(b) for b in BACKENDS} == {"a": 100, "b": 100, "c": 100}
    loads = store.cached_loads(BACKENDS)
    assert [loads[b].in_flight for b in BACKENDS] == [100, 100, 100]


async def test_release_is_idempotent_and_counts_return_to_zero() -> None:
    store = InMemoryStore()
    _, reservation = await store.pick_and_reserve(least_in_flight)
    await store.release(reservation, Observation())
    await store.release(reservation, Observation())
    assert (store.cached_loads(["a"]))["a"].in_flight == 0


async def test_release_records_moving_averages() -> None:
    store = InMemoryStore(ewma_alpha=0.5)
    for ttft in (1.0, 3.0):
        _, reservation = await store.pick_and_reserve(only_a)
        await store.release(reservation, Observation(ttft_s=ttft, tpot_s=ttft / 10))
    load = (store.cached_loads(["a"]))["a"]
    assert load.ttft_ewma_s == pytest.approx(2.0)
    assert load.tpot_ewma_s == pytest.approx(0.2)
    _, reservation = await store.pick_and_reserve(only_a)
    await store.release(reservation, Observation())  # nothing observed: averages unchanged
    assert (store.cached_loads(["a"]))["a"].ttft_ewma_s == pytest.approx(2.0)


async def test_close_gives_back_every_reservation() -> None:
    store = InMemoryStore()
    for _ in range(5):
        await store.pick_and_reserve(least_in_flight)
    await store.close()
    assert all(load.in_flight == 0 for load in (store.cached_loads(BACKENDS)).values())
