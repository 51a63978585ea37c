"""Benchmark: what the HTTP layers on the proxy path cost, and how granian behaves where the gateway relies on it.

    uv run python -m loadtests.bench_proxy_path --out loadtests/results/proxy-path

Four measurements, each one bounded run of small ASGI apps under granian on 127.0.0.1 (free ports, one
session per server, stopped by process group); ``docs/proxy-path-costs.md`` reads the results.

1. ``framework``: one granian worker (CPU 1 with taskset) serving a static 200 for a 1.2 KB chat body three
   ways: a raw ASGI callable, a Litestar handler, and the same Litestar handler writing one JSON log line per
   request. A closed-loop aiohttp client on CPU 0 sends ``--requests`` requests per app and round, apps
   interleaved per round. Per round: requests/s and the worker's CPU per request (from /proc); reported are
   the medians over rounds of the ratios Litestar/raw and logging/Litestar, and the CPU-per-request
   differences. The client's own CPU use tells whether the host (the client), not the server, was the limit.
2. ``log_line``: the same JSON log line formatted and written to a file in-process, microseconds per line.
3. ``disconnect``: a non-streaming Litestar handler awaiting a slow "upstream" (``asyncio.sleep``); the client
   closes its connection 0.2 s in. Recorded: whether the handler ran to completion or was cancelled, and for a
   second handler that watches the ASGI ``receive`` channel, how long after the close it saw ``http.disconnect``.
4. ``metrics``: two granian workers counting hits in a prometheus-client Counter; 200 hits, then 10 scrapes,
   once with the default registry and once through ``PROMETHEUS_MULTIPROC_DIR`` + ``MultiProcessCollector``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec
from litestar import Litestar, Request, get, post
from litestar.response import Response
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from loadtests.bench_coordination import _body, closed_loop
from loadtests.run.procs import free_port

HERE = Path(__file__).resolve().parent
ANSWER = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}'
SLOW_S = 1.0
CLOSE_AFTER_S = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# ---- the apps (granian imports them from this module: ``loadtests.bench_proxy_path:<factory>``) ----


def raw_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    return app


class _JsonLines(logging.Formatter):
    """One JSON object per line, like the gateway's request line."""

    encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name}
        entry.update(msg=record.getMessage(), **getattr(record, "fields", {}))
        return self.encoder.encode(entry).decode()


def _request_logger(path: str) -> logging.Logger:
    logger = logging.getLogger("bench.requests")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path)
    handler.setFormatter(_JsonLines())
    logger.addHandler(handler)
    return logger


def _log_fields(model: str) -> dict[str, Any]:
    return {"request_id": "3f1c9a", "model": model, "backend": "sim-0", "status": 200, "duration_ms": 1.234}


def litestar_app() -> Litestar:
    log_path = os.environ.get("BENCH_LOG_FILE")
    logger = _request_logger(log_path) if log_path else None

    @post("/v1/chat/completions", status_code=200)
    async def chat(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = msgspec.json.decode(await request.body())
        if logger is not None:
            logger.info("request", extra={"fields": _log_fields(body.get("model", ""))})
        return Response(ANSWER, media_type="application/json")

    return Litestar([chat], logging_config=None)


def disconnect_app() -> Litestar:
    """``/plain`` awaits the upstream only; ``/watched`` also watches ``receive`` for ``http.disconnect``."""
    state = Path(os.environ["BENCH_STATE_DIR"])

    def record(name: str, outcome: str) -> None:
        (state / f"{name}.json").write_text(json.dumps({"outcome": outcome, "at": time.time()}))

    @post("/plain", status_code=200)
    async def plain(request: Request[Any, Any, Any]) -> Response[bytes]:
        name = request.query_params["id"]
        await request.body()
        try:
            await asyncio.sleep(SLOW_S)  # the upstream call
        except asyncio.CancelledError:
            record(name, "cancelled")
            raise
        record(name, "completed")
        return Response(ANSWER, media_type="application/json")

    @post("/watched", status_code=200)
    async def watched(request: Request[Any, Any, Any]) -> Response[bytes]:
        name = request.query_params["id"]
        await request.body()
        upstream = asyncio.ensure_future(asyncio.sleep(SLOW_S))

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        done, _ = await asyncio.wait({upstream, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done:
            upstream.cancel()
            record(name, "disconnect-seen")
        else:
            watcher.cancel()
            record(name, "completed")
        return Response(ANSWER, media_type="application/json")

    return Litestar([plain, watched], logging_config=None)


def metrics_app() -> Litestar:
    hits = Counter("bench_hits", "Hits served by this app.")
    multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ

    @get("/hit")
    async def hit() -> str:
        hits.inc()
        return "ok"

    @get("/metrics")
    async def metrics() -> Response[bytes]:
        if multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return Response(generate_latest(registry), media_type="text/plain")
        return Response(generate_latest(), media_type="text/plain")

    return Litestar([hit, metrics], logging_config=None)


# ---- running them ----


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


@contextlib.contextmanager
def granian(factory: str, *, workers: int = 1, env: dict[str, str] | None = None, cpu: int | None = 1) -> Iterator[str]:
    port = free_port()
    command = [*(_pin(cpu) if cpu is not None else []), sys.executable, "-m", "granian", "--interface", "asgi"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log"]
    command += ["--log-level", "warning", "--factory", f"loadtests.bench_proxy_path:{factory}"]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, start_new_session=True, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/", timeout=1)
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"granian {factory} did not start")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _group_cpu_s(url: str) -> float:
    """CPU seconds (user + system) of every process of the granian listening at ``url``'s port."""
    port = url.rsplit(":", 1)[1]
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"granian" in b" ".join(cmdline) and port.encode() in cmdline:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def bench_framework(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    body = _body("bench-model")
    rounds: dict[str, list[dict[str, float]]] = {"raw": [], "litestar": [], "litestar+log": []}
    with (
        granian("raw_app") as raw,
        granian("litestar_app") as plain,
        granian("litestar_app", env={"BENCH_LOG_FILE": str(tmp / "requests.log")}) as logged,
    ):
        targets = {"raw": raw, "litestar": plain, "litestar+log": logged}
        for url in targets.values():
            asyncio.run(closed_loop(url, body, 300, args.concurrency))
        for i in range(args.rounds):
            for name, url in targets.items():
                cpu_before, client_before = _group_cpu_s(url), time.process_time()
                started = time.perf_counter()
                result = asyncio.run(closed_loop(url, body, args.requests, args.concurrency))
                wall = time.perf_counter() - started
                result["server_cpu_us_per_request"] = (_group_cpu_s(url) - cpu_before) / args.requests * 1e6
                result["server_cpu_share"] = (_group_cpu_s(url) - cpu_before) / wall
                result["client_cpu_share"] = (time.process_time() - client_before) / wall
                rounds[name].append(result)
                print(f"framework round {i + 1} {name}: {result['rps']:.0f} req/s", file=sys.stderr)
    ratios: dict[str, list[float]] = {"litestar_vs_raw_rps": [], "log_vs_litestar_rps": []}
    deltas: dict[str, list[float]] = {"litestar_minus_raw_cpu_us": [], "log_minus_litestar_cpu_us": []}
    for raw_r, lit_r, log_r in zip(rounds["raw"], rounds["litestar"], rounds["litestar+log"], strict=True):
        ratios["litestar_vs_raw_rps"].append(lit_r["rps"] / raw_r["rps"])
        ratios["log_vs_litestar_rps"].append(log_r["rps"] / lit_r["rps"])
        cpu = "server_cpu_us_per_request"
        deltas["litestar_minus_raw_cpu_us"].append(lit_r[cpu] - raw_r[cpu])
        deltas["log_minus_litestar_cpu_us"].append(log_r[cpu] - lit_r[cpu])
    median = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rounds.items()}
    return {
        "rounds": rounds,
        "median": median,
        "median_ratio": {k: statistics.median(v) for k, v in ratios.items()},
        "median_delta": {k: statistics.median(v) for k, v in deltas.items()},
    }


def bench_log_line(tmp: Path, lines: int = 20000) -> dict[str, float]:
    logger = _request_logger(str(tmp / "inprocess.log"))
    fields = {"extra": {"fields": _log_fields("bench-model")}}
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(lines // 5):
            logger.info("request", **fields)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) / (lines // 5) * 1e6)
    for handler in logger.handlers:
        handler.close()
    return {"us_per_line_median": statistics.median(samples), "lines": float(lines)}


async def _close_mid_request(url: str, path: str, name: str) -> float:
    """Send a complete request, close the connection CLOSE_AFTER_S later; return the wall time of the close."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = _body("bench-model")
    head = f"POST {path}?id={name} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    writer.write(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    await asyncio.sleep(CLOSE_AFTER_S)
    closed = time.time()
    writer.close()
    await writer.wait_closed()
    del reader
    return closed


def bench_disconnect(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    state = tmp / "disconnect"
    state.mkdir()
    trials: list[dict[str, Any]] = []
    with granian("disconnect_app", env={"BENCH_STATE_DIR": str(state)}, cpu=None) as url:
        for i in range(args.disconnect_trials):
            for path in ("/plain", "/watched"):
                name = f"{path.strip('/')}-{i}"
                closed = asyncio.run(_close_mid_request(url, path, name))
                deadline = time.monotonic() + SLOW_S + 2
                while not (state / f"{name}.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                seen = json.loads((state / f"{name}.json").read_text()) if (state / f"{name}.json").exists() else {}
                trial = {"handler": path, "outcome": seen.get("outcome", "no record"), "closed_at": closed}
                if seen:
                    trial["ms_after_close"] = (seen["at"] - closed) * 1000
                trials.append(trial)
                print(f"disconnect {name}: {trial['outcome']}", file=sys.stderr)
    summary: dict[str, Any] = {}
    for path in ("/plain", "/watched"):
        mine = [t for t in trials if t["handler"] == path]
        outcomes = sorted({t["outcome"] for t in mine})
        summary[path] = {
            "outcomes": {o: sum(t["outcome"] == o for t in mine) for o in outcomes},
            "ms_after_close_median": statistics.median(t["ms_after_close"] for t in mine if "ms_after_close" in t),
        }
    return {"trials": trials, "summary": summary, "slow_s": SLOW_S, "close_after_s": CLOSE_AFTER_S}


async def _hits_and_scrapes(url: str, hits: int, scrapes: int) -> list[float]:
    # A new connection per request, so that the kernel spreads them over the workers.
    connector = aiohttp.TCPConnector(force_close=True, limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def hit() -> None:
            async with session.get(f"{url}/hit") as response:
                await response.read()

        await asyncio.gather(*(hit() for _ in range(hits)))
        seen = []
        for _ in range(scrapes):
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            total = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("bench_hits_total"))
            seen.append(total)
    return seen


def bench_metrics(tmp: Path, hits: int = 200, scrapes: int = 10) -> dict[str, Any]:
    result: dict[str, Any] = {"hits": hits}
    for mode in ("default_registry", "multiprocess_dir"):
        env = {}
        if mode == "multiprocess_dir":
            directory = tmp / "prom"
            directory.mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        with granian("metrics_app", workers=2, env=env, cpu=None) as url:
            result[mode] = asyncio.run(_hits_and_scrapes(url, hits, scrapes))
        print(f"metrics {mode}: scrapes saw {result[mode]}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--disconnect-trials", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "proxy-path")
    args = parser.parse_args(argv)
    if _pin(0):
        os.sched_setaffinity(0, {0})  # the client on CPU 0, servers on CPU 1
    command = "uv run python -m loadtests.bench_proxy_path " + " ".join(argv if argv is not None else sys.argv[1:])
    result: dict[str, Any] = {"command": command.strip(), "cpus": os.cpu_count(), "started": time.time()}
    with tempfile.TemporaryDirectory(prefix="bench-proxy-path-") as tmp:
        result["framework"] = bench_framework(args, Path(tmp))
        result["log_line"] = bench_log_line(Path(tmp))
        result["disconnect"] = bench_disconnect(args, Path(tmp))
        result["metrics"] = bench_metrics(Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("log_line",)}, indent=2))
    print(json.dumps(result["framework"]["median_ratio"]), json.dumps(result["framework"]["median_delta"]))
    print(json.dumps(result["disconnect"]["summary"]), json.dumps({k: result["metrics"][k] for k in result["metrics"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
