"""The simulator's prefix cache against vLLM's, request by request, on the same token sequence.

What makes an exact comparison meaningful (each point was found by a mismatch):

- the same tokens: prompts go to ``/v1/completions`` as token-id lists (the simulator's 4-bytes-per-token
  tokenizer is not the tiny BPE), so both engines cut the same 32-token blocks;
- the same usable pool: vLLM reports ``num_gpu_blocks=256`` but keeps one as its null block, so 255 hold
  data; the simulator has no null block and is given 255 here;
- no partial blocks left behind: vLLM 0.32 puts a freed block that has no hash (a request's partial last
  block) at the FRONT of its free queue, to be reused first, and only hashed blocks at the back (LRU); the
  simulator queues every freed block at the back. ``whole_blocks`` sequences make every request's computed
  tokens (prompt + max_tokens - 1) fill whole blocks, so no such block exists.
- serial requests and unique tokens: the result then depends only on the sequence, not on timing, nor on
  what earlier tests left in the cache (old blocks are never hit; all 255 blocks are free at the start).

The two known gaps are kept as strict xfails, so a simulator that closes them turns them into failures
that say "remove the xfail". Under concurrency the step timing differs, and with it which request of a
burst finds another's blocks still cached: there the totals agree within ``CONCURRENT_TOLERANCE``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest

from loadtests.realvllm.servers import MODEL, NUM_GPU_BLOCKS, VllmServer
from loadtests.realvllm.workload import PrefixCounters, TokenRequest, serial_token_sequence
from loadtests.sim import SimFleet, SimFleetConfig

pytestmark = pytest.mark.realvllm

USABLE_BLOCKS = NUM_GPU_BLOCKS - 1
CONCURRENT_TOLERANCE = 0.03
"""|hits(vLLM) - hits(sim)| <= 3% of the prompt tokens queried, at concurrency 4. Seen on whole-block sequences:
0%, 0.06%, 0.8% (0-1 of 60 requests differ); on ragged ones, where the free-queue gap adds in, 1-2.5%."""
SEED = 5
"""A sequence on which both gaps show (3 requests differ each); most seeds show at least one."""


@dataclass(frozen=True)
class Replay:
    cached: list[int]
    """``usage.prompt_tokens_details.cached_tokens`` of each request, in sequence order."""
    counters: PrefixCounters
    """The server's prefix-cache counters over the replay."""


async def replay(url: str, sequence: list[TokenRequest], concurrency: int = 1) -> Replay:
    cached = [0] * len(sequence)
    todo = iter(enumerate(sequence))
    async with httpx.AsyncClient(timeout=60) as client:
        before = PrefixCounters.of((await client.get(f"{url}/metrics")).text)

        async def worker() -> None:
            for i, request in todo:
                body = {"model": MODEL, "prompt": request.prompt, "max_tokens": request.max_tokens, "ignore_eos": True}
                response = await client.post(f"{url}/v1/completions", json=body)
                assert response.status_code == 200, response.text
                cached[i] = response.json()["usage"]["prompt_tokens_details"]["cached_tokens"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        after = PrefixCounters.of((await client.get(f"{url}/metrics")).text)
    return Replay(cached, after - before)


async def replay_on_sim(sequence: list[TokenRequest], concurrency: int = 1, **knobs: int) -> tuple[Replay, int]:
    """The replay on a fresh ``tiny-cpu`` simulator, and how many blocks it evicted.

    Serial replays run 10x faster than real time (timing cannot change their outcome); concurrent ones in
    real time, so batches form as they do on the real engine.
    """
    time_scale = 1.0 if concurrency > 1 else 0.1
    config = SimFleetConfig(profile="tiny-cpu", time_scale=time_scale, **knobs)  # type: ignore[arg-type]
    async with SimFleet(config) as fleet:
        result = await replay(fleet.servers[0].url, sequence, concurrency)
        return result, fleet.servers[0].engine.kv.evictions


async def test_serial_sequence_hits_exactly_like_vllm(vllm_pair: list[VllmServer]) -> None:
    sequence = serial_token_sequence(SEED, whole_blocks=True)
    real = await replay(vllm_pair[0].url, sequence)
    sim, evictions = await replay_on_sim(sequence, num_gpu_blocks=USABLE_BLOCKS)
    assert sim.cached == real.cached
    assert sim.counters == real.counters
    # The sequence exercises what it should: hits, misses, and enough eviction that LRU order matters.
    assert sum(1 for c in real.cached if c) >= 30
    assert sum(1 for c in real.cached if not c) >= 12
    assert evictions > 2 * USABLE_BLOCKS


@pytest.mark.xfail(
    strict=True,
    reason="simulator gap: no null block, so the tiny-cpu profile's 256 blocks hold one more than vLLM's 255",
)
async def test_profile_block_count_matches_vllm(vllm_pair: list[VllmServer]) -> None:
    sequence = serial_token_sequence(SEED, whole_blocks=True)
    real = await replay(vllm_pair[0].url, sequence)
    sim, _ = await replay_on_sim(sequence)
    assert sim.cached == real.cached


@pytest.mark.xfail(
    strict=True,
    reason="simulator gap: vLLM 0.32 reuses freed unhashed (partial) blocks first (BlockPool.free_blocks "
    "prepends them); the simulator queues them LRU, so it evicts cached blocks about one block per request sooner",
)
async def test_partial_blocks_are_reused_first_like_vllm(vllm_pair: list[VllmServer]) -> None:
    sequence = serial_token_sequence(SEED)
    real = await replay(vllm_pair[0].url, sequence)
    sim, _ = await replay_on_sim(sequence, num_gpu_blocks=USABLE_BLOCKS)
    assert sim.cached == real.cached


async def test_concurrent_sequence_hits_within_tolerance(vllm_pair: list[VllmServer]) -> None:
    sequence = serial_token_sequence(SEED + 100, whole_blocks=True)
    real = await replay(vllm_pair[1].url, sequence, concurrency=4)
    sim, _ = await replay_on_sim(sequence, concurrency=4, num_gpu_blocks=USABLE_BLOCKS)
    assert sim.counters.queries == real.counters.queries == sum(len(r.prompt) for r in sequence)
    assert abs(sim.counters.hits - real.counters.hits) <= CONCURRENT_TOLERANCE * real.counters.queries
    assert real.counters.hits > 0.3 * real.counters.queries
