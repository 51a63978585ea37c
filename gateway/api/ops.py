"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.state import gateway_state
from gateway.telemetry.metrics import CoordinationCollector, FleetCollector, exposition


@get("/healthz", media_type="application/json")
async def healthz() -> dict[str, str]:
    """The process answers: Kubernetes' liveness probe (never depends on backends or Redis)."""
    return {"status": "ok"}


@get("/readyz", media_type="application/json")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready while at least one backend is routable, so a load balancer skips a replica that sees none."""
    fleet = gateway_state(request).fleet
    ready = fleet.ready()
    body = {"status": "ready" if ready else "not_ready", "routable_backends": len(fleet.routable_ids())}
    return Response(body, status_code=200 if ready else 503)


@get("/metrics")
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = gateway_state(request)
    collectors = [
        FleetCollector(state.fleet, state.store, state.clock),
        CoordinationCollector(state.store, state.admission.local_depths, state.admission.fleet_depths),
    ]
    return Response(exposition(state.telemetry.metrics, collectors), media_type=CONTENT_TYPE_LATEST)
