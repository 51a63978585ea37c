"""Profiles: the step-time formula, the calibration anchors, overrides; and that the engine honours them."""

from __future__ import annotations

import httpx
import pytest

from loadtests.sim.profiles import PROFILES, get_profile
from loadtests.sim.tokenizer import count_tokens
from tests.loadtests.sim.sim_helpers import tiny_fleet, words


def test_qwen15_h200_reproduces_the_measured_large_prefills() -> None:
    p = get_profile("qwen2.5-1.5b-h200")
    for n, measured_ms in ((8192, 63.387), (16384, 142.914)):
        compute_ms = 1e3 * (p.s_per_token * n + p.s_per_pair * n * n / 2)
        assert compute_ms == pytest.approx(measured_ms, rel=0.01)


def test_decode_is_memory_bound_and_prefill_compute_bound() -> None:
    p = get_profile("qwen2.5-1.5b-l4")
    decode = p.step_seconds(tokens=1, attention_pairs=500, seqs=1, context_tokens=500)
    # one sequence: the weights over L4 bandwidth (3.08 GB / 269 GB/s ~ 11.5 ms) plus the fixed costs
    assert decode == pytest.approx(p.step_fixed_s + p.step_per_seq_s + 3.08e9 / (300e9 * 4.3 / 4.8), rel=0.02)
    prefill = p.step_seconds(tokens=2048, attention_pairs=2048 * 1024, seqs=1, context_tokens=2048)
    assert prefill > 5 * decode


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_are_consistent(name: str) -> None:
    p = PROFILES[name]
    assert p.kv_capacity_tokens >= p.max_model_len
    assert p.max_num_batched_tokens >= 1
    assert p.model


def test_overrides_keep_cache_bytes_and_clamp_max_model_len() -> None:
    p = get_profile("tiny-cpu")
    assert p.with_overrides(block_size=64).num_gpu_blocks == 128
    small = p.with_overrides(num_gpu_blocks=8)
    assert small.max_model_len == 8 * 32
    assert p.with_overrides(max_num_seqs=None) == p


async def test_engine_time_follows_the_step_model() -> None:
    prompt = words("timed", 2952)
    n = count_tokens(prompt)
    async with tiny_fleet(time_scale=1.0) as fleet, httpx.AsyncClient() as client:
        server = fleet.servers[0]
        r = await client.post(server.url + "/v1/completions", json={"prompt": prompt, "max_tokens": 2})
        assert r.status_code == 200
        stats = server.engine.stats
    prefill = server.engine.profile.step_seconds(n, n * n / 2, 1, n)
    assert stats.steps == 2
    assert stats.ttft.count == 1
    assert stats.ttft.sum >= prefill  # a step never ends before its modelled duration
    assert stats.itl.count == 1
