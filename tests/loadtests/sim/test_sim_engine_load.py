"""Continuous batching under pressure: preemption on a tiny cache, and aborts on disconnect."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx

from tests.loadtests.sim.sim_helpers import scrape, tiny_fleet, wait_until, words


async def test_preemption_on_tiny_cache_and_all_complete() -> None:
    # 24 blocks of 32 tokens; each request needs ~10 blocks of prompt and grows by 4 more while decoding.
    async with tiny_fleet(num_gpu_blocks=24) as fleet, httpx.AsyncClient(timeout=30) as client:
        server = fleet.servers[0]

        async def one(i: int) -> dict[str, object]:
            body = {"model": "tiny", "prompt": words(f"long-{i}", 1240), "max_tokens": 128}
            r = await client.post(server.url + "/v1/completions", json=body)
            assert r.status_code == 200, r.text
            result: dict[str, object] = r.json()
            return result

        results = await asyncio.gather(*(one(i) for i in range(6)))
        metrics = await scrape(client, server.url)
    assert all(r["usage"]["completion_tokens"] == 128 for r in results)  # type: ignore[index]
    assert metrics["vllm:num_preemptions_total"] > 0
    assert metrics["vllm:request_success_total{finished_reason=length}"] == 6
    assert server.engine.num_running == 0
    assert server.engine.kv.num_used_blocks == 0


async def test_waiting_queue_and_max_num_seqs() -> None:
    async with tiny_fleet(max_num_seqs=2, time_scale=1.0) as fleet, httpx.AsyncClient(timeout=30) as client:
        server = fleet.servers[0]
        body = {"model": "tiny", "prompt": "hello", "max_tokens": 200}
        tasks = [asyncio.create_task(client.post(server.url + "/v1/completions", json=body)) for _ in range(5)]
        await wait_until(lambda: server.engine.num_running == 2 and server.engine.num_waiting == 3)
        metrics = await scrape(client, server.url)
        assert metrics["vllm:num_requests_running"] == 2
        assert metrics["vllm:num_requests_waiting"] == 3
        assert metrics["vllm:kv_cache_usage_perc"] > 0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wait_until(lambda: server.engine.num_running == 0 and server.engine.num_waiting == 0)


async def test_stream_disconnect_aborts_and_frees_blocks() -> None:
    async with tiny_fleet(time_scale=1.0) as fleet, aiohttp.ClientSession() as session:
        server = fleet.servers[0]
        engine = server.engine
        body = {"model": "tiny", "prompt": words("abort", 800), "max_tokens": 1500, "stream": True}
        resp = await session.post(server.url + "/v1/completions", json=body)
        assert resp.status == 200
        await resp.content.readline()  # the first event arrived: the request is running
        assert engine.num_running == 1
        assert engine.kv.num_used_blocks > 0
        resp.close()  # drop the connection mid-stream
        await wait_until(lambda: engine.num_running == 0)
        assert engine.kv.num_used_blocks == 0
        assert engine.stats.aborted == 1


async def test_non_stream_disconnect_aborts() -> None:
    async with tiny_fleet(time_scale=1.0) as fleet:
        server = fleet.servers[0]
        engine = server.engine
        _reader, writer = await asyncio.open_connection(server.host, server.port)
        payload = b'{"model": "tiny", "prompt": "a long wait", "max_tokens": 1500}'
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        await wait_until(lambda: engine.num_running == 1)
        writer.close()
        await writer.wait_closed()
        await wait_until(lambda: engine.num_running == 0)
        assert engine.kv.num_used_blocks == 0
        assert engine.stats.aborted == 1
