"""Fault injection: fail_rate 500s, a server marked down, a listener stopped and restarted."""

from __future__ import annotations

import httpx
import pytest

from tests.loadtests.sim.sim_helpers import tiny_fleet

BODY = {"model": "tiny", "prompt": "x", "max_tokens": 1}


async def test_fail_rate_answers_500_in_error_shape() -> None:
    async with tiny_fleet(fail_rate=1.0) as fleet, httpx.AsyncClient() as client:
        r = await client.post(fleet.servers[0].url + "/v1/completions", json=BODY)
        assert fleet.servers[0].engine.stats.prefix_queries == 0
    assert r.status_code == 500
    assert r.json()["error"]["code"] == 500
    assert r.json()["error"]["type"] == "InternalServerError"


async def test_fail_rate_is_a_fraction() -> None:
    async with tiny_fleet(fail_rate=0.5, seed=7) as fleet, httpx.AsyncClient() as client:
        codes = [
            (await client.post(fleet.servers[0].url + "/v1/completions", json=BODY)).status_code for _ in range(40)
        ]
    assert {200, 500} == set(codes)
    assert 8 <= codes.count(500) <= 32


async def test_down_server_fails_health_and_metrics() -> None:
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        server = fleet.servers[0]
        server.down = True
        health = await client.get(server.url + "/health")
        metrics = await client.get(server.url + "/metrics")
        completion = await client.post(server.url + "/v1/completions", json=BODY)
        server.down = False
        assert (await client.get(server.url + "/health")).status_code == 200
    assert health.status_code == 503
    assert metrics.status_code == 503
    assert completion.status_code == 503


async def test_stop_refuses_connections_then_start_serves_again() -> None:
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        server = fleet.servers[0]
        port = server.port
        await server.stop()
        with pytest.raises(httpx.ConnectError):
            await client.get(server.url + "/health")
        await server.start()
        assert server.port == port
        assert (await client.get(server.url + "/health")).status_code == 200


async def test_fleet_ports_ids_and_models() -> None:
    async with tiny_fleet(backends=3, models=("a", "b")) as fleet, httpx.AsyncClient() as client:
        ids = [s.id for s in fleet.servers]
        served = [(await client.get(s.url + "/v1/models")).json()["data"][0]["id"] for s in fleet.servers]
        ports = {s.port for s in fleet.servers}
        wrong = await client.post(fleet.servers[0].url + "/v1/completions", json={**BODY, "model": "b"})
    assert ids == ["sim-0", "sim-1", "sim-2"]
    assert served == ["a", "b", "a"]
    assert len(ports) == 3
    assert 0 not in ports
    assert wrong.status_code == 404
