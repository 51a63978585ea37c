"""Retries before the first byte, passive ejection and recovery, against simulated backends."""

import time
from pathlib import Path

import httpx
import pytest

from tests.processes import SimServer, free_port, gateway, gateway_config, simulator, simulator_process

pytestmark = pytest.mark.e2e


def chat(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def test_5xx_before_first_byte_is_retried_on_another_backend(tmp_path: Path) -> None:
    with (
        simulator("--backends", "1", "--time-scale", "0.1") as good,
        simulator("--backends", "1", "--time-scale", "0.1", "--fail-rate", "1.0") as bad,
    ):
        servers = [SimServer("good", good[0].url, good[0].model), SimServer("bad", bad[0].url, bad[0].model)]
        config = gateway_config(servers, free_port(), policy="round_robin", health={"consecutive_errors": 1000})
        with gateway(config, tmp_path) as url:
            responses = [chat(url, good[0].model) for _ in range(6)]
            assert [r.status_code for r in responses] == [200] * 6
            assert {r.headers["x-gateway-backend"] for r in responses} == {"good"}
            retried = sum("attempts=2" in r.headers["x-gateway-route"] for r in responses)
            assert retried >= 3  # round robin sends at least every other first attempt to "bad"
            metrics = httpx.get(f"{url}/metrics").text
            assert f'gateway_upstream_errors_total{{backend="bad",kind="status_5xx"}} {retried}.0' in metrics
            assert f"gateway_upstream_retries_total {retried}.0" in metrics


def test_only_backend_5xx_passes_through(tmp_path: Path) -> None:
    with (
        simulator("--backends", "1", "--fail-rate", "1.0") as bad,
        gateway(gateway_config(bad, free_port()), tmp_path) as url,
    ):
        response = chat(url, bad[0].model)
        assert response.status_code == 500
        assert response.headers["x-gateway-backend"] == bad[0].id
        assert "error" in response.json()


def test_dead_backend_connect_error_retries_then_ejects(tmp_path: Path) -> None:
    with (
        simulator("--backends", "1", "--time-scale", "0.1") as good,
        simulator_process("--backends", "1") as doomed,
    ):
        servers = [good[0], SimServer("doomed", doomed.servers[0].url, good[0].model)]
        # slow active health, so only the passive path (connect errors) can notice the death in time
        health: dict[str, float] = {"interval_s": 30, "consecutive_errors": 2, "max_ejection_percent": 50}
        with gateway(gateway_config(servers, free_port(), policy="round_robin", health=health), tmp_path) as url:
            doomed.kill()
            responses = [chat(url, good[0].model) for _ in range(8)]
            assert [r.status_code for r in responses] == [200] * 8
            attempts = [r.headers["x-gateway-route"].split("attempts=")[1][0] for r in responses]
            # two connect errors eject "doomed"; after that every first attempt succeeds
            assert attempts.count("2") == 2
            assert attempts[-4:] == ["1"] * 4


def test_backend_that_comes_back_is_routed_again(tmp_path: Path) -> None:
    port = free_port()
    with simulator_process("--backends", "1", "--base-port", str(port)) as first:
        server = first.servers[0]
        with gateway(gateway_config([server], free_port()), tmp_path) as url:
            first.kill()
            deadline = time.monotonic() + 10
            while httpx.get(f"{url}/readyz").status_code == 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert chat(url, server.model).status_code == 503
            with simulator_process("--backends", "1", "--base-port", str(port)):
                deadline = time.monotonic() + 15
                while httpx.get(f"{url}/readyz").status_code != 200:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert chat(url, server.model).status_code == 200
