"""Traces: the span tree and attributes (in-memory exporter), and W3C context reaching the backend."""

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.config import BackendConfig, FleetConfig, GatewayConfig, ProxyConfig, RoutingConfig
from gateway.telemetry.tracing import Tracing, tracing_requested
from tests.processes import SimServer, simulator

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    # A separate process: the test client blocks this event loop while the app (in its own thread) calls out.
    with simulator("--backends", "1", "--time-scale", "0.05") as servers:
        yield servers[0]


@pytest.fixture
async def traced(sim: SimServer) -> AsyncIterator[tuple[AsyncTestClient, InMemorySpanExporter, str]]:  # type: ignore[type-arg]
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter), environ={})
    config = GatewayConfig(
        routing=RoutingConfig(policy="prefix"),
        fleet=FleetConfig(backends=[BackendConfig(id=sim.id, url=sim.url, models=[sim.model])]),
        # the simulator echoes the traceparent it got; a configured return header lets the test see it
        proxy=ProxyConfig(return_headers=frozenset({"x-sim-traceparent"})),
    )
    async with AsyncTestClient(app=create_app(config, tracing=tracing)) as client:
        assert (await client.get("/readyz")).status_code == 200
        yield client, exporter, sim.model


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_span_tree_attributes_and_propagation(traced, stream: bool) -> None:  # type: ignore[no-untyped-def]
    client, exporter, model = traced
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "stream": stream,
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "hi " * 200}],
        },
        headers={"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01", "x-priority": "high"},
    )
    assert response.status_code == 200
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"POST /v1/chat/completions", "admission", "route", "upstream"}
    root = spans["POST /v1/chat/completions"]
    assert root.kind == SpanKind.SERVER
    assert root.parent is not None
    assert f"{root.parent.span_id:016x}" == CLIENT_SPAN_ID  # joined the client's trace
    for span in spans.values():
        assert f"{span.context.trace_id:032x}" == CLIENT_TRACE_ID
    for child in ("admission", "route", "upstream"):
        parent = spans[child].parent
        assert parent is not None
        assert root.context is not None
        assert parent.span_id == root.context.span_id
    attrs = root.attributes or {}
    assert attrs["gen_ai.request.model"] == model
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.output_tokens"] == 3
    input_tokens = attrs["gen_ai.usage.input_tokens"]
    assert isinstance(input_tokens, int)
    assert input_tokens > 0
    assert attrs["gateway.priority"] == "high"
    assert attrs["http.response.status_code"] == 200
    route = spans["route"].attributes or {}
    assert route["gateway.route.policy"] == "prefix"
    assert route["gateway.route.candidates"] == 1
    assert "gateway.route.cached_blocks" in route
    upstream = spans["upstream"]
    assert upstream.kind == SpanKind.CLIENT
    assert [e.name for e in upstream.events] == (["first_token"] if stream else [])
    # the backend saw the upstream span as its parent: vLLM's own spans join the same trace
    echoed = response.headers["x-sim-traceparent"]
    assert echoed == f"00-{CLIENT_TRACE_ID}-{upstream.context.span_id:016x}-01"


async def test_gateway_error_ends_the_trace_with_its_status(traced) -> None:  # type: ignore[no-untyped-def]
    client, exporter, _ = traced
    response = await client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user"}]})
    assert response.status_code == 404
    (root,) = exporter.get_finished_spans()
    assert (root.attributes or {})["http.response.status_code"] == 404


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        pytest.param({}, False, id="nothing-set"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True, id="endpoint"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, id="traces-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "console"}, True, id="console"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}, False, id="disabled"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "none"}, False, id="none"),
    ],
)
def test_tracing_is_configured_by_the_standard_environment(environ: dict[str, str], enabled: bool) -> None:
    assert tracing_requested(environ) is enabled
