"""Automatic prefix caching as routing sees it: cached_tokens in usage and the prefix-cache counters."""

from __future__ import annotations

import httpx

from loadtests.sim.tokenizer import count_tokens, render_chat
from tests.loadtests.sim.sim_helpers import scrape, tiny_fleet, words

MODEL = "tiny"


async def complete(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int = 4) -> dict[str, object]:
    r = await client.post(url + "/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": max_tokens})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def cached(body: dict[str, object]) -> int:
    usage = body["usage"]
    assert isinstance(usage, dict)
    value: int = usage["prompt_tokens_details"]["cached_tokens"]
    return value


async def test_repeated_prompt_hits_exactly_the_full_blocks() -> None:
    prompt = words("repeat", 2950)  # 738 tokens, as in the real-vLLM check
    n = count_tokens(prompt)
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url
        first = await complete(client, url, prompt)
        before = await scrape(client, url)
        second = await complete(client, url, prompt)
        after = await scrape(client, url)
    assert n == 738
    assert cached(first) == 0
    assert cached(second) == (n - 1) // 32 * 32 == 736
    assert after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"] == 736
    assert after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"] == n


async def test_shared_system_prompt_hits_across_chats() -> None:
    system = {"role": "system", "content": words("tenant-a", 2000)}
    chat1 = [system, {"role": "user", "content": "first question"}]
    chat2 = [system, {"role": "user", "content": "a different second question"}]
    shared_blocks = len(render_chat([system], add_generation_prompt=False).encode()) // 4 // 32
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url + "/v1/chat/completions"
        r1 = await client.post(url, json={"model": MODEL, "messages": chat1, "max_tokens": 2})
        r2 = await client.post(url, json={"model": MODEL, "messages": chat2, "max_tokens": 2})
    assert cached(r1.json()) == 0
    assert cached(r2.json()) == shared_blocks * 32


async def test_small_cache_evicts_lru() -> None:
    first = words("first", 2400)  # 600 tokens = 18 full blocks of 32; the cache holds 32 blocks
    async with tiny_fleet(num_gpu_blocks=32) as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url
        await complete(client, url, first)
        assert cached(await complete(client, url, first)) == 18 * 32
        for i in range(3):
            await complete(client, url, words(f"other-{i}", 2400))
        again = await complete(client, url, first)
        assert fleet.servers[0].engine.kv.evictions > 0
    assert cached(again) == 0
