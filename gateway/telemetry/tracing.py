"""OpenTelemetry traces, configured by the standard ``OTEL_*`` environment variables, off when not set.

Tracing turns on when ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) is set and ``OTEL_SDK_DISABLED`` is not ``true``.
``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL``) picks ``http/protobuf`` (the default) or
``grpc``; the exporters read their own endpoint, headers and timeout variables. ``OTEL_SERVICE_NAME``
defaults to ``vllm-fleet-gateway``.

One trace per request:

    POST /v1/chat/completions (SERVER; the client's traceparent is its parent)
    ├── admission   (priority, outcome)
    ├── route       (policy, candidates, choice, reason, score parts, matched prefix blocks)
    └── upstream    (CLIENT; its context goes to vLLM as traceparent, so vLLM's own spans join;
                     a ``first_token`` event at TTFT)

with GenAI semantic-convention attributes (``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``/``output_tokens``). When tracing is off every call here is a no-op on a
shared null object, so the hot path pays nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_getter: DefaultGetter = DefaultGetter()


def tracing_requested(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return bool(
        exporter in ("otlp", "console")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def exporter_from_env(environ: Mapping[str, str]) -> SpanExporter:
    if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        return ConsoleSpanExporter()
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


class Tracing:
    """The replica's tracer; ``Tracing.disabled()`` when the environment asks for none."""

    def __init__(self, tracer: Tracer | None, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self.provider = provider

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        environ = os.environ if environ is None else environ
        if not tracing_requested(environ):
            return cls.disabled()
        return cls.with_processor(BatchSpanProcessor(exporter_from_env(environ)), environ)

    @classmethod
    def with_processor(cls, processor: SpanProcessor, environ: Mapping[str, str] | None = None) -> Tracing:
        environ = os.environ if environ is None else environ
        resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "vllm-fleet-gateway")})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor)
        return cls(provider.get_tracer("vllm-fleet-gateway"), provider)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def start_request(self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]) -> RequestTrace:
        if self.tracer is None:
            return NULL_TRACE
        parent = _propagator.extract(headers, getter=_getter)
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        return RequestTrace(self.tracer, span)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


class RequestTrace:
    """The spans of one request. Spans end when their work ends - a stream's after the handler returned."""

    def __init__(self, tracer: Tracer | None, span: Span | None) -> None:
        self._tracer = tracer
        self.span = span
        self._context: Context | None = trace.set_span_in_context(span) if span is not None else None

    def child(self, name: str, attributes: dict[str, Any], *, client: bool = False) -> Span | None:
        if self._tracer is None:
            return None
        kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
        return self._tracer.start_span(name, context=self._context, kind=kind, attributes=attributes)

    def inject(self, span: Span | None, headers: dict[str, str]) -> None:
        """Put ``span``'s context in the upstream headers as W3C traceparent (replacing the client's)."""
        if span is not None:
            _propagator.inject(headers, context=trace.set_span_in_context(span))

    def ids(self) -> tuple[str, str] | None:
        if self.span is None:
            return None
        ctx = self.span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    def set(self, **attributes: Any) -> None:
        if self.span is not None:
            self.span.set_attributes({k.replace("__", "."): v for k, v in attributes.items() if v is not None})

    def finish(self, status: int) -> None:
        if self.span is None:
            return
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


def end_span(span: Span | None, error: str | None = None, **attributes: Any) -> None:
    if span is None:
        return
    if attributes:
        span.set_attributes({k.replace("__", "."): v for k, v in attributes.items() if v is not None})
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


NULL_TRACE = RequestTrace(None, None)
