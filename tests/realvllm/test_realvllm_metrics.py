"""The gateway's reading of vLLM's ``/metrics`` against a live vLLM CPU server, idle and under load.

Checks ``gateway.fleet.vllm_metrics.parse_vllm_metrics`` on the real text (running, waiting, KV usage,
prefix counters, ``cache_config_info`` geometry), that a gateway in front sees both servers healthy, and
that the simulator names its metrics and labels like vLLM does for every family the gateway reads.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.fleet.vllm_metrics import EngineStats, parse_vllm_metrics
from loadtests.realvllm.servers import BLOCK_SIZE, MODEL, NUM_GPU_BLOCKS, VllmServer
from loadtests.realvllm.workload import PrefixCounters, token_ids
from loadtests.sim import SimFleet, SimFleetConfig

pytestmark = pytest.mark.realvllm

GATEWAY_FAMILIES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:cache_config_info",
)
"""The families ``parse_vllm_metrics`` reads (counters under their family name, without ``_total``)."""


def test_idle_scrape_parses_with_cache_geometry(vllm_pair: list[VllmServer]) -> None:
    for server in vllm_pair:
        stats = parse_vllm_metrics(server.metrics_text())
        assert (stats.running, stats.waiting, stats.kv_usage) == (0, 0, 0)
        assert (stats.block_size, stats.num_gpu_blocks) == (BLOCK_SIZE, NUM_GPU_BLOCKS)
        assert stats.kv_capacity_tokens == 8192
        assert stats.models == frozenset({MODEL})


def test_prefix_counters_move_by_the_request_usage(vllm_pair: list[VllmServer]) -> None:
    """Queries grow by the prompt's tokens, hits by its ``cached_tokens`` (a 738-token prompt hits 736)."""
    server = vllm_pair[0]
    prompt = token_ids(random.Random("counters"), 738)
    before = PrefixCounters.of(server.metrics_text())
    cached = []
    for _ in range(2):
        body = {"model": MODEL, "prompt": prompt, "max_tokens": 1}
        usage = httpx.post(f"{server.url}/v1/completions", json=body, timeout=30).json()["usage"]
        cached.append(usage["prompt_tokens_details"]["cached_tokens"])
    delta = PrefixCounters.of(server.metrics_text()) - before
    assert cached == [0, 736]
    assert delta == PrefixCounters(queries=2 * 738, hits=736)


async def test_running_waiting_and_kv_usage_under_load(vllm_pair: list[VllmServer]) -> None:
    """10 requests of 1,000 + 600 tokens (50 blocks each) on a 255-block cache: at most 5 run, the rest wait."""
    server = vllm_pair[1]
    rng = random.Random("load")
    samples: list[EngineStats] = []
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> None:
            body = {"model": MODEL, "prompt": token_ids(rng, 1000), "max_tokens": 600, "ignore_eos": True}
            response = await client.post(f"{server.url}/v1/completions", json=body)
            assert response.status_code == 200

        async def sample(done: asyncio.Event) -> None:
            while not done.is_set():
                samples.append(parse_vllm_metrics((await client.get(f"{server.url}/metrics")).text))
                await asyncio.sleep(0.05)

        done = asyncio.Event()
        sampler = asyncio.create_task(sample(done))
        await asyncio.gather(*(one() for _ in range(10)))
        done.set()
        await sampler
        after = parse_vllm_metrics((await client.get(f"{server.url}/metrics")).text)
    assert max(s.running for s in samples) >= 3
    assert max(s.waiting for s in samples) >= 1
    assert max(s.kv_usage for s in samples) > 0.5
    assert all(0 <= s.kv_usage <= 1 for s in samples)
    assert (after.running, after.waiting, after.kv_usage) == (0, 0, 0)


def test_gateway_sees_both_backends_healthy(gateway_url: str, vllm_pair: list[VllmServer]) -> None:
    deadline = time.monotonic() + 10
    while True:
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{gateway_url}/metrics").text)}
        healthy = {s.labels["backend"]: s.value for s in families["gateway_backend_healthy"].samples}
        if healthy == {s.id: 1.0 for s in vllm_pair} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert healthy == {s.id: 1.0 for s in vllm_pair}
    ages = {s.labels["backend"]: s.value for s in families["gateway_backend_scrape_age_seconds"].samples}
    assert all(age < 5 for age in ages.values())
    models = httpx.get(f"{gateway_url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == [MODEL]


def _families(text: str) -> dict[str, tuple[str, frozenset[frozenset[str]]]]:
    """family name -> (type, the label-name sets of its samples)."""
    return {
        f.name: (f.type, frozenset(frozenset(s.labels) for s in f.samples))
        for f in text_string_to_metric_families(text)
        if f.name.startswith("vllm:")
    }


async def test_simulator_names_and_labels_match_vllm(vllm_pair: list[VllmServer]) -> None:
    """Same names, types and label sets for what the gateway reads; every simulated family exists in vLLM."""
    real = _families(vllm_pair[0].metrics_text())
    async with SimFleet(SimFleetConfig(profile="tiny-cpu")) as fleet, httpx.AsyncClient() as client:
        sim = _families((await client.get(f"{fleet.servers[0].url}/metrics")).text)
    for name in GATEWAY_FAMILIES:
        assert sim[name] == real[name], name
    assert set(sim) <= set(real), f"simulated families vLLM does not have: {sorted(set(sim) - set(real))}"
    mismatched = {n: (sim[n], real[n]) for n in sim if sim[n] != real[n]}
    assert not mismatched
