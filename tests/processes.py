"""Servers the end-to-end tests start as subprocesses on 127.0.0.1 free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.run.procs import free_port as free_port  # one definition, re-exported for the tests

START_TIMEOUT_S = 30.0


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


@dataclass(frozen=True)
class SimServer:
    id: str
    url: str
    model: str


@dataclass
class SimProcess:
    process: subprocess.Popen[str]
    servers: list[SimServer]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)


@contextlib.contextmanager
def simulator_process(*args: str) -> Iterator[SimProcess]:
    """``loadtest sim ARGS`` until it prints ``ready``; stopped (by PID) on exit whatever happened."""
    command = [sys.executable, "-m", "loadtests.cli", "sim", *args]
    if "--base-port" not in args:
        command += ["--base-port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    servers: list[SimServer] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in process.stdout:
            words = line.split()
            if words == ["ready"]:
                break
            if len(words) >= 2 and words[1].startswith("http"):
                model = next(w.split("=", 1)[1] for w in words if w.startswith("model="))
                servers.append(SimServer(words[0], words[1], model))
            assert time.monotonic() < deadline, "simulator did not get ready"
        else:
            raise AssertionError("simulator exited before it was ready")
        yield SimProcess(process, servers)
    finally:
        stop(process)


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[list[SimServer]]:
    with simulator_process(*args) as sim:
        yield sim.servers


def gateway_toml(
    servers: list[SimServer],
    port: int,
    *,
    policy: str | None = None,
    health: dict[str, float] | None = None,
    extra: str = "",
) -> str:
    """A gateway config for these servers; health checks every 0.2 s unless ``health`` says otherwise."""
    lines = ["[server]", f"port = {port}", ""]
    if policy:
        lines += ["[routing]", f'policy = "{policy}"', ""]
    lines += ["[fleet.health]", *(f"{k} = {v}" for k, v in {"interval_s": 0.2, **(health or {})}.items()), ""]
    lines += [extra, ""]
    for s in servers:
        lines += ["[[fleet.backends]]", f'id = "{s.id}"', f'url = "{s.url}"', f'models = ["{s.model}"]', ""]
    return "\n".join(lines)


@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[str]

    def kill(self) -> None:
        """SIGKILL the whole process group (granian's main process and its workers), like a pod kill."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


@contextlib.contextmanager
def gateway_process(
    config_toml: str, tmp: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[GatewayProcess]:
    """``gateway serve`` under granian with this config, in its own process group, ready (/readyz).
    With ``log``, the gateway's stderr (its JSON log lines) goes to that file."""
    port = int(next(line.split("=")[1] for line in config_toml.splitlines() if line.startswith("port")))
    path = tmp / f"gateway-{port}.toml"
    path.write_text(config_toml)
    stderr = open(log, "w") if log else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)],
        env={**os.environ, **(env or {})},
        text=True,
        start_new_session=True,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, "gateway exited at start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "gateway did not get ready"
            time.sleep(0.1)
        yield GatewayProcess(base, process)
    finally:
        stop(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # any worker left behind
        if stderr is not None:
            stderr.close()


@contextlib.contextmanager
def gateway(config_toml: str, tmp: Path, env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """``gateway serve`` under granian with this config; yields its base URL once /readyz says ready."""
    with gateway_process(config_toml, tmp, env, log) as g:
        yield g.url
