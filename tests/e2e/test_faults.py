"""Retries before the first byte, passive ejection and recovery, against simulated backends."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import SimServer, free_port, gateway, gateway_toml, simulator

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
        extra = '[routing]\npolicy = "round_robin"\n[fleet.health]\nconsecutive_errors = 1000\n'
        with gateway(gateway_toml(servers, free_port(), extra), tmp_path) as url:
            responses = [chat(url, good[0].model) for _ in range(6)]
            assert [r.status_code for r in responses] == [200] * 6
            assert {r.headers["x-gateway-backend"] for r in responses} == {"good"}
            receipts = [r.headers["x-gateway-route"] for r in responses]
            assert sum("attempts=2" in r for r in receipts) == 3  # every other turn hit "bad" first
            metrics = httpx.get(f"{url}/metrics").text
            assert 'gateway_upstream_errors_total{backend="bad",kind="status_5xx"} 3.0' in metrics
            assert "gateway_upstream_retries_total 3.0" in metrics


def test_only_backend_5xx_passes_through(tmp_path: Path) -> None:
    with (
        simulator("--backends", "1", "--fail-rate", "1.0") as bad,
        gateway(gateway_toml(bad, free_port()), tmp_path) as url,
    ):
        response = chat(url, bad[0].model)
        assert response.status_code == 500
        assert response.headers["x-gateway-backend"] == bad[0].id
        assert "error" in response.json()


def test_dead_backend_connect_error_retries_then_ejects(tmp_path: Path) -> None:
    with simulator("--backends", "1", "--time-scale", "0.1") as good:
        doomed_port = free_port()
        doomed = subprocess.Popen(
            [sys.executable, "-m", "loadtests.cli", "sim", "--backends", "1", "--base-port", str(doomed_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert doomed.stdout is not None
            assert any(line.strip() == "ready" for line in doomed.stdout)
            servers = [good[0], SimServer("doomed", f"http://127.0.0.1:{doomed_port}", good[0].model)]
            # slow active health, so only the passive path (connect errors) can notice the death in time
            extra = (
                '[routing]\npolicy = "round_robin"\n'
                "[fleet.health]\ninterval_s = 30\nconsecutive_errors = 2\nmax_ejection_percent = 50\n"
            )
            with gateway(gateway_toml(servers, free_port(), extra).replace("interval_s = 0.2\n", ""), tmp_path) as url:
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(timeout=5)
                responses = [chat(url, good[0].model) for _ in range(8)]
                assert [r.status_code for r in responses] == [200] * 8
                attempts = [r.headers["x-gateway-route"].split("attempts=")[1][0] for r in responses]
                # two connect errors eject "doomed"; after that every first attempt succeeds
                assert attempts.count("2") == 2
                assert attempts[-4:] == ["1"] * 4
        finally:
            if doomed.poll() is None:
                doomed.kill()


def test_backend_that_comes_back_is_routed_again(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "loadtests.cli", "sim", "--backends", "1", "--base-port", str(port)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    assert any(line.strip() == "ready" for line in first.stdout)
    server = SimServer("phoenix", f"http://127.0.0.1:{port}", "")
    model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
    server = SimServer("phoenix", server.url, model)
    try:
        with gateway(gateway_toml([server], free_port()), tmp_path) as url:
            first.kill()
            first.wait(timeout=5)
            deadline = time.monotonic() + 10
            while httpx.get(f"{url}/readyz").status_code == 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert chat(url, model).status_code == 503
            second = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 15
                while httpx.get(f"{url}/readyz").status_code != 200:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert chat(url, model).status_code == 200
            finally:
                second.terminate()
                second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
