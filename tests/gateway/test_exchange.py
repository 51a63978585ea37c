"""The request path in process: dispatch, retries, 5xx before the first byte, client disconnects, streams
broken off, the store refusing at the admission limit - through the real app, store and router, with the
upstream answered by a ``MockTransport``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence

import msgspec
import pytest

from coordination import BackendLoad, InMemoryStore, Pick, PickRequest, Reservation
from gateway.config import GatewayConfig, ProxyConfig, RequestLimits, ServerConfig
from gateway.upstream import MockReply, MockRequest, UpstreamConnectError
from tests.gateway.exchange_helpers import (
    MODEL,
    Gateway,
    by_backend,
    completion,
    config,
    gateway,
    post_then_leave,
    stream,
)

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}


def route(headers: object) -> dict[str, str]:
    receipt: str = headers["x-gateway-route"]  # type: ignore[index]
    return dict(part.split("=", 1) for part in receipt.split("; "))


async def test_whole_answer_passes_through_and_releases_the_reservation() -> None:
    async with gateway(lambda r: completion("hi")) as gw:
        response = await gw.client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "r-7"})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "hi"
        assert response.headers["x-request-id"] == "r-7"
        assert route(response.headers)["attempts"] == "1"
        sent = gw.transport.requests[0]
        assert sent.url == f"http://{response.headers['x-gateway-backend']}.invalid/v1/chat/completions"
        assert sent.headers["x-request-id"] == "r-7"
        assert "content-length" not in sent.headers
        assert json.loads(sent.body) == CHAT
        assert await gw.in_flight() == {"b0": 0, "b1": 0}
        backend = response.headers["x-gateway-backend"]
        labels = {"model": MODEL, "backend": backend, "status": "200", "priority": "normal"}
        assert gw.sample("gateway_requests_total", **labels) == 1


async def test_stream_relays_every_event_and_strips_the_usage_it_asked_for() -> None:
    async with gateway(lambda r: stream(tokens=3)) as gw:
        response = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.text.split("\n\n") if line]
        assert len(events) == 4  # three tokens and [DONE]
        assert json.loads(gw.transport.requests[0].body)["stream_options"] == {"include_usage": True}
        assert gw.transport.upstreams[0].read_to_end
        assert await gw.in_flight() == {"b0": 0, "b1": 0}


async def test_connect_error_retries_on_another_backend() -> None:
    replies: dict[str, MockReply | Exception] = {"b0": UpstreamConnectError("refused"), "b1": completion()}
    async with gateway(by_backend(replies)) as gw:
        attempts = []
        for _ in range(2):  # round robin: at least one of two requests starts on b0
            response = await gw.client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200
            assert response.headers["x-gateway-backend"] == "b1"
            attempts.append(int(route(response.headers)["attempts"]))
        retried = attempts.count(2)
        assert retried >= 1
        assert sum(attempts) == len(gw.transport.requests)
        assert [r.backend_id for r in gw.transport.requests].count("b0") == retried
        assert gw.sample("gateway_upstream_errors_total", backend="b0", kind="connect") == retried
        assert gw.sample("gateway_upstream_retries_total") == retried
        assert await gw.in_flight() == {"b0": 0, "b1": 0}


async def test_every_backend_unreachable_is_502_in_openai_shape() -> None:
    reason = "ClientConnectorError(10.0.0.7:8000 Connection refused)"
    async with gateway(lambda r: (_ for _ in ()).throw(UpstreamConnectError(reason))) as gw:
        response = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_connect_error"
        assert "10.0.0.7" not in response.text  # no internals for clients
        assert "refused" not in response.text
        assert len(gw.transport.requests) == 2  # each backend once
        assert await gw.in_flight() == {"b0": 0, "b1": 0}


async def test_5xx_before_the_first_byte_is_retried_elsewhere() -> None:
    failing = MockReply(503, [b'{"error": "overloaded"}'])
    async with gateway(by_backend({"b0": failing, "b1": completion()})) as gw:
        responses = [await gw.client.post("/v1/chat/completions", json=CHAT) for _ in range(2)]
        assert [r.status_code for r in responses] == [200, 200]
        retried = [int(route(r.headers)["attempts"]) for r in responses].count(2)
        b0 = [u for u in gw.transport.upstreams if u.backend_id == "b0"]
        assert len(b0) == retried >= 1
        assert all(u.closed for u in b0)
        assert gw.sample("gateway_upstream_errors_total", backend="b0", kind="status_5xx") == retried
        assert await gw.in_flight() == {"b0": 0, "b1": 0}


async def test_5xx_with_nowhere_else_to_go_passes_through() -> None:
    failing = MockReply(500, [b'{"error": {"message": "boom"}}'])
    async with gateway(lambda r: failing, config(backends=1)) as gw:
        response = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status_code == 500
        assert response.json() == {"error": {"message": "boom"}}
        assert route(response.headers)["attempts"] == "1"
        assert await gw.in_flight() == {"b0": 0}


async def test_stream_broken_off_mid_way_ends_with_an_in_band_error() -> None:
    async with gateway(lambda r: stream(tokens=5, break_after=2), config(backends=1)) as gw:
        response = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        events = [e for e in response.text.split("\n\n") if e]
        assert len(events) == 3
        assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == "upstream_stream_error"
        assert gw.sample("gateway_requests_total", model=MODEL, backend="b0", status="502", priority="normal") == 1
        assert await gw.in_flight() == {"b0": 0}


async def test_client_leaving_a_whole_answer_aborts_the_upstream_and_counts_499() -> None:
    slow = MockReply(200, [b"{", b"}"], chunk_delay_s=5.0)
    async with gateway(lambda r: slow, config(backends=1)) as gw:
        sent = await asyncio.wait_for(post_then_leave(gw.app, CHAT, leave_after_s=0.1), 3)
        assert sent[0]["status"] == 499
        assert gw.transport.upstreams[0].aborted
        assert gw.sample("gateway_requests_total", model=MODEL, backend="b0", status="499", priority="normal") == 1
        assert await gw.in_flight() == {"b0": 0}


async def test_client_leaving_while_the_backend_connects_releases_the_reservation() -> None:
    async def never(request: MockRequest) -> MockReply:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async with gateway(never, config(backends=1)) as gw:
        sent = await asyncio.wait_for(post_then_leave(gw.app, CHAT, leave_after_s=0.1), 3)
        assert sent[0]["status"] == 499
        assert gw.sample("gateway_requests_total", model=MODEL, backend="none", status="499", priority="normal") == 1
        assert await gw.in_flight() == {"b0": 0}


class StaleViewStore(InMemoryStore):
    """The store's counts are exact, but this replica's view of them lags (as another replica's fresh
    reservations do in Redis until the next heartbeat): admission sees an idle fleet."""

    picks = 0

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        return {b: BackendLoad() for b in backend_ids}

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        self.picks += 1
        return await super().pick_and_reserve(request)


async def test_store_refusing_at_the_admission_limit_sends_the_request_back_to_wait() -> None:
    release, first_sent = asyncio.Event(), asyncio.Event()

    async def handler(request: MockRequest) -> MockReply:
        if json.loads(request.body)["messages"][0]["content"] == "first":
            first_sent.set()
            await release.wait()
        return completion()

    cfg = config(backends=1, backend_capacity=1, low_threshold=0.5, stale_after_s=1e9)
    store = StaleViewStore()
    async with gateway(handler, cfg, store=store) as gw:
        first_body = {**CHAT, "messages": [{"role": "user", "content": "first"}]}
        first = asyncio.create_task(gw.client.post("/v1/chat/completions", json=first_body))
        await asyncio.wait_for(first_sent.wait(), 5)
        second = asyncio.create_task(gw.client.post("/v1/chat/completions", json=CHAT, headers={"x-priority": "low"}))
        await asyncio.sleep(0.3)
        assert not second.done()  # admitted on the stale view, refused by the store, waiting again
        # each refusal waits for a request to end or a recheck (0.1 s) before asking the store again
        assert store.picks <= 1 + 0.3 / cfg.admission.recheck_s + 2
        assert len(gw.transport.requests) == 1
        release.set()
        assert (await first).status_code == 200
        assert (await asyncio.wait_for(second, 5)).status_code == 200
        assert gw.sample("gateway_admission_admitted_total", priority="low") == 1
        assert await gw.in_flight() == {"b0": 0}


async def test_a_huge_unknown_model_name_is_not_echoed_back_whole() -> None:
    async with gateway(lambda r: completion()) as gw:
        response = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "m" * 1_000_000})
        assert response.status_code == 404
        assert len(response.content) < 1000


async def test_unknown_model_is_404_before_admission() -> None:
    async with gateway(lambda r: completion()) as gw:
        response = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
        assert response.status_code == 404
        assert response.json()["error"]["param"] == "model"
        assert gw.transport.requests == []


async def test_no_healthy_backend_is_503_with_retry_after() -> None:
    async with gateway(lambda r: completion(), config(backends=1)) as gw:
        for _ in range(2):
            gw.state.fleet.record_scrape("b0", None)
        response = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_degraded_coordination_serves_and_keeps_prefix_affinity_locally() -> None:
    """Redis unreachable from the start: every request is served from the replica's own state, and a
    prefix it has seen still draws the next request that shares it."""
    cfg = config(backends=4, policy="prefix", redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    long_chat = {"model": MODEL, "messages": [{"role": "system", "content": "You are terse. " * 200}]}
    async with gateway(lambda r: completion(), cfg, store=None) as gw:
        assert gw.state.store.degraded
        first = await gw.client.post("/v1/chat/completions", json=long_chat)
        assert first.status_code == 200
        assert route(first.headers)["cached_blocks"] == "0"
        again = {**long_chat, "messages": [*long_chat["messages"], {"role": "user", "content": "and more"}]}
        second = await gw.client.post("/v1/chat/completions", json=again)
        assert second.status_code == 200
        assert second.headers["x-gateway-backend"] == first.headers["x-gateway-backend"]
        assert int(route(second.headers)["cached_blocks"]) > 0
        metrics = await gw.client.get("/metrics")
        assert "gateway_coordination_degraded 1.0" in metrics.text
        assert await gw.in_flight() == dict.fromkeys(("b0", "b1", "b2", "b3"), 0)


def ejecting_after(errors: int, backends: int) -> GatewayConfig:
    cfg = config(backends=backends)
    health = msgspec.structs.replace(cfg.fleet.health, consecutive_errors=errors, base_ejection_s=60.0)
    return msgspec.structs.replace(cfg, fleet=msgspec.structs.replace(cfg.fleet, health=health))


def routable(gw: Gateway) -> set[str]:
    return {b for b, backend in gw.state.fleet.backends.items() if backend.routable(gw.state.clock())}


async def test_connect_errors_in_a_row_eject_the_backend_from_routing() -> None:
    cfg = ejecting_after(2, backends=3)
    replies: dict[str, MockReply | Exception] = {
        "b0": UpstreamConnectError("refused"),
        "b1": completion(),
        "b2": completion(),
    }
    async with gateway(by_backend(replies), cfg) as gw:
        for _ in range(12):
            assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        tried_b0 = [r.backend_id for r in gw.transport.requests].count("b0")
        assert tried_b0 == 2  # two errors in a row eject it; round robin never offers it again while ejected
        assert not gw.state.fleet.backends["b0"].routable(gw.state.clock())
        assert gw.sample("gateway_upstream_errors_total", backend="b0", kind="connect") == 2


class SlowPickStore(InMemoryStore):
    """A store whose pick goes over the network (as Redis's does): it reserves after a delay."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.started = asyncio.Event()

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        self.started.set()
        await asyncio.sleep(self.delay_s)
        return await super().pick_and_reserve(request)


async def test_client_leaving_during_a_slow_pick_leaves_nothing_reserved() -> None:
    store = SlowPickStore(delay_s=0.3)
    async with gateway(lambda r: completion(), config(backends=1), store=store) as gw:
        sent = await asyncio.wait_for(post_then_leave(gw.app, CHAT, leave_after_s=0.05), 3)
        assert store.started.is_set()  # the client left while the pick was under way
        assert sent[0]["status"] == 499
        await asyncio.sleep(0.4)  # past the moment the pick would have reserved
        assert await gw.in_flight() == {"b0": 0}
        assert gw.transport.requests == []


async def test_the_in_process_store_picks_without_suspending() -> None:
    from coordination.scoring import ScoreLine

    store = InMemoryStore()
    coroutine = store.pick_and_reserve(PickRequest((ScoreLine("a", 0.0),)))
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)  # ran to the end in one step: nothing for a cancellation to interrupt
    pick, _ = done.value.value
    assert pick.backend_id == "a"


async def test_a_request_every_backend_answers_5xx_ejects_none_of_them() -> None:
    """The request is the likely cause (e.g. input that crashes the engine's tokenizer): a client sending it
    again and again must not get healthy backends ejected."""
    failing = MockReply(500, [b'{"error": {"message": "bad input"}}'])
    async with gateway(lambda r: failing, ejecting_after(2, backends=4)) as gw:
        for _ in range(8):
            assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 500
        assert routable(gw) == {"b0", "b1", "b2", "b3"}
        assert gw.sample("gateway_upstream_errors_total", backend="b0", kind="status_5xx") >= 2


async def test_a_backend_failing_what_others_serve_is_ejected() -> None:
    failing = MockReply(500, [b'{"error": {"message": "engine dead"}}'])
    async with gateway(by_backend({"b0": failing, "b1": completion(), "b2": completion()}), ejecting_after(2, 3)) as gw:
        for _ in range(12):
            assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert [r.backend_id for r in gw.transport.requests].count("b0") == 2
        assert routable(gw) == {"b1", "b2"}


async def test_only_allowed_headers_cross_the_gateway_either_way() -> None:
    reply = MockReply(200, [b'{"choices": []}'], {"content-type": "application/json", "server": "uvicorn", "x-b": "1"})
    cfg = msgspec.structs.replace(config(), proxy=ProxyConfig(forward_headers=frozenset({"x-tenant"})))
    async with gateway(lambda r: reply, cfg) as gw:
        sent_headers = {"cookie": "s=1", "x-forwarded-for": "6.6.6.6", "x-tenant": "t1", "authorization": "Bearer k"}
        response = await gw.client.post("/v1/chat/completions", json=CHAT, headers=sent_headers)
        assert response.status_code == 200
        upstream = {k.lower() for k in gw.transport.requests[0].headers}
        assert {"x-tenant", "authorization"} <= upstream
        assert not {"cookie", "x-forwarded-for"} & upstream
        assert "server" not in response.headers
        assert "x-b" not in response.headers


async def test_request_shape_limits_come_from_the_config() -> None:
    cfg = msgspec.structs.replace(config(), server=ServerConfig(limits=RequestLimits(max_n=2, max_messages=3)))
    async with gateway(lambda r: completion(), cfg) as gw:
        assert (await gw.client.post("/v1/chat/completions", json={**CHAT, "n": 2})).status_code == 200
        over = await gw.client.post("/v1/chat/completions", json={**CHAT, "n": 3})
        assert (over.status_code, over.json()["error"]["param"]) == (400, "n")
        many = {**CHAT, "messages": [{"role": "user", "content": "hello"}] * 4}
        assert (await gw.client.post("/v1/chat/completions", json=many)).json()["error"]["param"] == "messages"
