"""Traces really leave the process: a small OTLP/HTTP receiver gets the gateway's spans; logs are JSON."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.processes import SimServer, free_port, gateway, gateway_config

pytestmark = pytest.mark.e2e


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.exports: list[ExportTraceServiceRequest] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def span_names(self) -> dict[str, list[object]]:
        spans: dict[str, list[object]] = {}
        for export in self.exports:
            for resource_spans in export.resource_spans:
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        spans.setdefault(span.name, []).append(span)
        return spans


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        assert self.path == "/v1/traces"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.exports.append(request)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_spans_are_exported_over_otlp_http_and_logs_carry_ids(
    receiver: Receiver, sim_pair: list[SimServer], tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    log = tmp_path / "gateway.log"
    with gateway(gateway_config(sim_pair, free_port()), tmp_path, env=env, log=log) as url:
        body = {"model": sim_pair[0].model, "max_tokens": 2, "messages": [{"role": "user", "content": "trace me"}]}
        response = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-request-id": "otlp-1"})
        assert response.status_code == 200
        deadline = time.monotonic() + 10
        while "upstream" not in receiver.span_names():
            assert time.monotonic() < deadline, "no spans reached the OTLP receiver"
            time.sleep(0.05)
    spans = receiver.span_names()
    assert {"POST /v1/chat/completions", "admission", "route", "upstream"} <= set(spans)
    service = {
        attr.value.string_value
        for export in receiver.exports
        for rs in export.resource_spans
        for attr in rs.resource.attributes
        if attr.key == "service.name"
    }
    assert service == {"gateway-under-test"}
    root = spans["POST /v1/chat/completions"][0]
    trace_id = root.trace_id.hex()  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    request_lines = [x for x in lines if x.get("logger") == "gateway.requests"]
    assert any(x["request_id"] == "otlp-1" and x["trace_id"] == trace_id and x["status"] == 200 for x in request_lines)
