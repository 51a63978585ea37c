"""Benchmark: what the Redis store costs a replica, against the in-process store and no gateway at all.

    uv run python -m loadtests.bench_coordination --out loadtests/results/bench_coordination

One simulated vLLM server answers almost at once (time scale 0.001, one output token), so what is measured
is the proxy path. A closed-loop aiohttp client at fixed concurrency sends N non-streamed chat requests
(a 1.2 KB body, a typical short chat prompt) three ways, in rounds so that machine noise hits all three alike:

- ``direct``: to the simulator itself (the baseline);
- ``memory``: through one gateway replica with in-process state;
- ``redis``: through one gateway replica sharing state through a local redis-server.

With taskset, the gateway runs on CPU 1 and everything else on CPU 0. Reported: requests/s and p50/p95
latency per setup (median over rounds), the latency the gateway adds over direct, and for Redis the
commands per request and the server CPU per request from ``INFO commandstats`` (EVALSHA calls and usec).

Before/after mode compares two gateway trees in one run (same simulator, same Redis, same client)::

    uv run python -m loadtests.bench_coordination --baseline-ref 4af59ee --out loadtests/results/bench_vs_4af59ee

``git archive REF`` is extracted into a temporary directory (the "before" tree); the "after" tree is the
working tree, or ``--after-tree PATH``. Each gateway runs with its tree as working directory and first on
``PYTHONPATH``. Every round measures direct, then memory and redis for both trees, the order of before and
after alternating from round to round. Reported per configuration (memory, redis): the median over rounds of
the ratios after/before of the added p50 latency (gateway p50 minus direct p50 of the same round), of the
closed-loop requests/s, and of the gateway's CPU time per request (its process tree, from /proc): on a host
shared with other work, the CPU a request costs varies less than the requests/s the host leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import redis

from gateway.config import (
    BackendConfig,
    CoordinationConfig,
    FleetConfig,
    GatewayConfig,
    RoutingConfig,
    ServerConfig,
)
from loadtests.harness.gateway_toml import write_config
from loadtests.redis_binary import find_redis_server
from loadtests.run.procs import free_port, group_cpu_seconds

HERE = Path(__file__).resolve().parent
GATEWAY_PIDS: dict[str, int] = {}
"""Each running gateway's main process (its own process group), by URL: the group's CPU is read around
every measurement."""


def measured(url: str, body: bytes, requests: int, concurrency: int) -> dict[str, float]:
    """``closed_loop``, plus the gateway's CPU microseconds per request (its whole process tree) when known:
    on a shared host the CPU a request costs is steadier than the requests/s that other work leaves it."""
    pid = GATEWAY_PIDS.get(url)
    before = group_cpu_seconds({pid})[pid] if pid else 0.0
    result = asyncio.run(closed_loop(url, body, requests, concurrency))
    if pid:
        result["cpu_us_per_request"] = (group_cpu_seconds({pid})[pid] - before) / requests * 1e6
    return result


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def simulator() -> Iterator[tuple[str, str]]:
    port = free_port()
    command = [*_pin(0), sys.executable, "-m", "loadtests.cli", "sim", "--backends", "1", "--base-port", str(port)]
    command += ["--time-scale", "0.001", "--default-max-tokens", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        model = ""
        for raw in process.stdout:
            line = raw.decode()
            if "model=" in line:
                model = line.split("model=")[1].split()[0]
            if line.strip() == "ready":
                break
        yield f"http://127.0.0.1:{port}", model
    finally:
        _stop(process)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = find_redis_server()
    port = free_port()
    process = subprocess.Popen(
        [*_pin(0), binary, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                break
        time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        _stop(process)


@contextlib.contextmanager
def gateway(backend_url: str, model: str, redis_url: str | None, tmp: Path, tree: Path | None = None) -> Iterator[str]:
    port = free_port()
    # Encoded from this tree's GatewayConfig with defaults left out, so the file names only keys that the
    # baseline tree knows too (server, routing.policy, coordination, fleet.backends).
    config = GatewayConfig(
        server=ServerConfig(port=port, log_level="WARNING"),
        routing=RoutingConfig(policy="prefix"),
        coordination=CoordinationConfig(redis_url=redis_url, namespace="bench") if redis_url else CoordinationConfig(),
        fleet=FleetConfig(backends=[BackendConfig(id="sim-0", url=backend_url, models=[model])]),
    )
    path = write_config(config, tmp / f"gateway-{port}.toml")
    env = None
    if tree is not None:  # run that tree's gateway: its directory first on the import path
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
    command = [*_pin(1), sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)]
    process = subprocess.Popen(command, cwd=tree, env=env, start_new_session=True)  # its CPU: one group
    url = f"http://127.0.0.1:{port}"
    GATEWAY_PIDS[url] = process.pid
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        _stop(process)


def _body(model: str) -> bytes:
    text = "Summarise the attached ticket and propose a next step. " * 19  # ~1.1 KB of content
    payload = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    return json.dumps(payload).encode()


async def closed_loop(url: str, body: bytes, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.post(
                f"{url}/v1/chat/completions", data=body, headers={"content-type": "application/json"}
            ) as response:
                await response.read()
                errors += response.status != 200
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "errors": float(errors),
    }


def redis_stats(redis_url: str) -> dict[str, float]:
    with redis.Redis.from_url(redis_url) as client:
        stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return {"evalsha_calls": float(evalsha["calls"]), "evalsha_usec": float(evalsha["usec"])}


def run(args: argparse.Namespace) -> dict[str, object]:
    rounds: dict[str, list[dict[str, float]]] = {"direct": [], "memory": [], "redis": []}
    redis_per_request: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, simulator() as (sim_url, model), redis_server() as redis_url:
        body = _body(model)
        with (
            gateway(sim_url, model, None, Path(tmp)) as memory_url,
            gateway(sim_url, model, redis_url, Path(tmp)) as redis_gw,
        ):
            targets = {"direct": sim_url, "memory": memory_url, "redis": redis_gw}
            for url in targets.values():  # warm up connections, scripts, caches
                asyncio.run(closed_loop(url, body, 200, args.concurrency))
            for i in range(args.rounds):
                for name, url in targets.items():
                    if name == "redis":
                        with redis.Redis.from_url(redis_url) as client:
                            client.config_resetstat()
                    result = asyncio.run(closed_loop(url, body, args.requests, args.concurrency))
                    rounds[name].append(result)
                    if name == "redis":
                        stats = redis_stats(redis_url)
                        redis_per_request.append(
                            {
                                "evalsha_per_request": stats["evalsha_calls"] / args.requests,
                                "redis_usec_per_request": stats["evalsha_usec"] / args.requests,
                            }
                        )
                    print(
                        f"round {i + 1}/{args.rounds} {name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms",
                        file=sys.stderr,
                    )
    summary = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]} for name, results in rounds.items()
    }
    per_request = {k: statistics.median(r[k] for r in redis_per_request) for k in redis_per_request[0]}
    return {"rounds": rounds, "median": summary, "redis": per_request}


@contextlib.contextmanager
def baseline_tree(ref: str) -> Iterator[Path]:
    """``git archive REF`` extracted into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=HERE.parent, capture_output=True, check=True, timeout=60)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True, timeout=60)
        yield Path(tmp)


def _ratios(rounds: dict[str, list[dict[str, float]]], config: str) -> dict[str, float | list[float]]:
    added: list[float] = []
    rps: list[float] = []
    cpu: list[float] = []
    for direct, before, after in zip(
        rounds["direct"], rounds[f"{config}@before"], rounds[f"{config}@after"], strict=True
    ):
        added.append((after["p50_ms"] - direct["p50_ms"]) / (before["p50_ms"] - direct["p50_ms"]))
        rps.append(after["rps"] / before["rps"])
        if "cpu_us_per_request" in after and "cpu_us_per_request" in before:
            cpu.append(after["cpu_us_per_request"] / before["cpu_us_per_request"])
    return {
        "added_p50_ratio": statistics.median(added),
        "rps_ratio": statistics.median(rps),
        "cpu_ratio": statistics.median(cpu) if cpu else float("nan"),
        "added_p50_ratios": added,
        "rps_ratios": rps,
        "cpu_ratios": cpu,
    }


def run_compare(args: argparse.Namespace) -> dict[str, object]:
    configs = ("memory", "redis")
    names = ["direct"] + [f"{c}@{side}" for c in configs for side in ("before", "after")]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    after_tree = (args.after_tree or HERE.parent).resolve()
    with (
        tempfile.TemporaryDirectory() as tmp,
        baseline_tree(args.baseline_ref) as before_tree,
        simulator() as (sim_url, model),
        redis_server() as redis_url,
    ):
        body = _body(model)
        trees = {"before": before_tree, "after": after_tree}
        with contextlib.ExitStack() as stack:
            targets = {"direct": sim_url}
            for config in configs:
                for side, tree in trees.items():
                    store = redis_url if config == "redis" else None
                    targets[f"{config}@{side}"] = stack.enter_context(gateway(sim_url, model, store, Path(tmp), tree))
            for url in targets.values():  # warm up connections, scripts, caches
                asyncio.run(closed_loop(url, body, 200, args.concurrency))
            for i in range(args.rounds):
                sides = ("before", "after") if i % 2 == 0 else ("after", "before")
                order = ["direct"] + [f"{c}@{side}" for c in configs for side in sides]
                for name in order:
                    result = measured(targets[name], body, args.requests, args.concurrency)
                    rounds[name].append(result)
                    print(
                        f"round {i + 1}/{args.rounds} {name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms",
                        file=sys.stderr,
                    )
    summary = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]} for name, results in rounds.items()
    }
    return {
        "baseline_ref": args.baseline_ref,
        "after_tree": str(after_tree),
        "rounds": rounds,
        "median": summary,
        "ratios": {config: _ratios(rounds, config) for config in configs},
    }


def report_compare(result: dict[str, object], command: str, args: argparse.Namespace) -> str:
    median = result["median"]
    ratios = result["ratios"]
    assert isinstance(median, dict)
    assert isinstance(ratios, dict)
    direct = median["direct"]
    lines = [
        f"# Coordination benchmark: {args.baseline_ref} (before) vs {result['after_tree']} (after)",
        "",
        f"Command: `{command}`",
        "",
        f"One replica per tree and store (one granian worker{', pinned to CPU 1' if _pin(1) else ''}), one simulated "
        f"vLLM server answering at once, a closed-loop aiohttp client at concurrency {args.concurrency}, "
        f"{args.requests} non-streamed 1.2 KB chat requests per setup and round, {args.rounds} rounds interleaved "
        "(before/after order alternating). Ratios are after/before within a round, then the median over rounds; "
        "below 1 means the after tree adds less latency, above 1 means it serves more requests/s; CPU is the "
        "gateway process tree's user + system time per request (below 1: the after tree costs less).",
        "",
        "| config | before rps | after rps | rps after/before | before +p50 ms | after +p50 ms | +p50 after/before "
        "| before CPU us/req | after CPU us/req | CPU after/before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in ("memory", "redis"):
        before, after, ratio = median[f"{config}@before"], median[f"{config}@after"], ratios[config]
        lines.append(
            f"| {config} | {before['rps']:.0f} | {after['rps']:.0f} | {ratio['rps_ratio']:.2f} "
            f"| {before['p50_ms'] - direct['p50_ms']:.2f} | {after['p50_ms'] - direct['p50_ms']:.2f} "
            f"| {ratio['added_p50_ratio']:.2f} | {before.get('cpu_us_per_request', float('nan')):.0f} "
            f"| {after.get('cpu_us_per_request', float('nan')):.0f} | {ratio['cpu_ratio']:.3f} |"
        )
    lines += ["", f"Direct to the simulator: {direct['rps']:.0f} requests/s, p50 {direct['p50_ms']:.2f} ms.", ""]
    return "\n".join(lines)


def report(result: dict[str, object], command: str, args: argparse.Namespace) -> str:
    median = result["median"]
    assert isinstance(median, dict)
    per_request = result["redis"]
    assert isinstance(per_request, dict)
    direct = median["direct"]
    lines = [
        "# Coordination benchmark: in-process vs Redis store",
        "",
        f"Command: `{command}`",
        "",
        f"One replica (one granian worker{', pinned to CPU 1' if _pin(1) else ''}), one simulated vLLM server "
        f"answering at once, a closed-loop aiohttp client at concurrency {args.concurrency}, {args.requests} "
        f"non-streamed 1.2 KB chat requests per setup and round, {args.rounds} rounds interleaved; medians.",
        "",
        "| setup | requests/s | p50 ms | p95 ms | added p50 ms vs direct | rps vs memory |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("direct", "memory", "redis"):
        m = median[name]
        added = "-" if name == "direct" else f"{m['p50_ms'] - direct['p50_ms']:.2f}"
        ratio = "-" if name == "direct" else f"{m['rps'] / median['memory']['rps']:.2f}x"
        lines.append(f"| {name} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p95_ms']:.2f} | {added} | {ratio} |")
    lines += [
        "",
        f"Redis per proxied request: {per_request['evalsha_per_request']:.2f} round trips (EVALSHA calls: "
        f"pick-and-reserve + release; the heartbeat and the backend-state exchange are per interval, not per "
        f"request), {per_request['redis_usec_per_request']:.1f} usec of Redis CPU (commandstats usec of the "
        "scripts, which includes the commands they run).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_coordination")
    parser.add_argument("--baseline-ref", help="git ref whose tree is measured as 'before' against the after tree")
    parser.add_argument(
        "--after-tree", type=Path, help="with --baseline-ref: the 'after' tree (default: this checkout)"
    )
    args = parser.parse_args(argv)
    if args.after_tree and not args.baseline_ref:
        parser.error("--after-tree needs --baseline-ref")
    command = "uv run python -m loadtests.bench_coordination " + " ".join(argv if argv is not None else sys.argv[1:])
    result = run_compare(args) if args.baseline_ref else run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    text = (report_compare if args.baseline_ref else report)(result, command.strip(), args)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
