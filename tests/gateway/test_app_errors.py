"""Errors the gateway answers itself, in the OpenAI shape, through the ASGI app in process.

The one backend here listens nowhere (a closed port), so every request that gets past validation finds no
healthy backend.
"""

import socket

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import BackendConfig, FleetConfig, GatewayConfig, HealthConfig, ServerConfig


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def client():  # type: ignore[no-untyped-def]
    config = GatewayConfig(
        server=ServerConfig(max_body_bytes=2048),
        fleet=FleetConfig(
            backends=[BackendConfig(id="dead", url=f"http://127.0.0.1:{closed_port()}", models=["m"])],
            health=HealthConfig(interval_s=60),
        ),
    )
    async with AsyncTestClient(app=create_app(config)) as c:
        yield c


def chat(model: str = "m", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def assert_openai_error(response, status: int, code: str | None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code
    return error  # type: ignore[no-any-return]


async def test_malformed_json_is_400(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/chat/completions", content=b"{oops", headers={"x-request-id": "r-1"})
    assert_openai_error(response, 400, "invalid_request")
    assert response.headers["x-request-id"] == "r-1"


async def test_wrong_type_is_400_naming_the_param(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/completions", json={"model": 1, "prompt": "x"})
    error = assert_openai_error(response, 400, "invalid_request")
    assert error["param"] == "model"


async def test_unknown_model_is_404(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/chat/completions", json=chat("gpt-nope"))
    assert_openai_error(response, 404, "model_not_found")
    assert response.headers["x-request-id"]


async def test_body_over_limit_is_413(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/chat/completions", json=chat(padding="x" * 4096))
    assert_openai_error(response, 413, "request_too_large")


async def test_no_healthy_backend_is_503_with_retry_after(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/chat/completions", json=chat())
    assert_openai_error(response, 503, "no_healthy_backend")
    assert int(response.headers["retry-after"]) >= 1


async def test_unknown_path_and_method_in_openai_shape(client) -> None:  # type: ignore[no-untyped-def]
    assert_openai_error(await client.post("/v1/nothing", json={}), 404, "not_found")
    assert (await client.get("/v1/chat/completions")).status_code == 405


async def test_readyz_is_503_while_no_backend_is_healthy(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/healthz")).status_code == 200
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["routable_backends"] == 0
    assert (await client.get("/v1/models")).json() == {"object": "list", "data": []}


async def test_metrics_count_requests_by_status(client) -> None:  # type: ignore[no-untyped-def]
    await client.post("/v1/chat/completions", json=chat())
    await client.post("/v1/chat/completions", json=chat("nope"))
    text = (await client.get("/metrics")).text
    assert 'gateway_requests_total{backend="none",model="m",priority="normal",status="503"} 1.0' in text
    assert 'gateway_requests_total{backend="none",model="unknown",priority="normal",status="404"} 1.0' in text
    assert 'gateway_backend_healthy{backend="dead"} 0.0' in text
