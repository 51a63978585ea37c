"""``loadtest sim``: run a fleet of simulated vLLM servers until SIGINT/SIGTERM.

Prints one line per server (``sim-0 http://127.0.0.1:8001 model=... profile=...``), then ``ready`` once
every server listens (stdout is flushed: other programs wait for that line), and exits 0 after a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from loadtests.sim.fleet import SimFleet, SimFleetConfig
from loadtests.sim.profiles import DEFAULT_PROFILE, PROFILES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sim`` subcommand on an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sim",
        help="run simulated vLLM servers (one port each)",
        description="Run N simulated vLLM servers in one process until SIGINT/SIGTERM.",
    )
    p.add_argument("--backends", type=int, default=1, help="number of servers (default 1)")
    p.add_argument("--base-port", type=int, default=8001, help="server i listens on base+i; 0 = free ports")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    p.add_argument(
        "--model", nargs="+", default=None, metavar="NAME", help="served model name(s); several: round robin"
    )
    p.add_argument("--time-scale", type=float, default=1.0, help="multiplies simulated durations (0.1 = 10x)")
    p.add_argument("--block-size", type=int)
    p.add_argument("--num-gpu-blocks", type=int)
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--default-max-tokens", type=int, help="output length when a request sets none")
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of completions answered 500")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list-profiles", action="store_true", help="print the profiles and exit")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> SimFleetConfig:
    models = tuple(args.model or ())
    return SimFleetConfig(
        backends=args.backends,
        base_port=args.base_port,
        host=args.host,
        profile=args.profile,
        models=models,
        time_scale=args.time_scale,
        block_size=args.block_size,
        num_gpu_blocks=args.num_gpu_blocks,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_model_len=args.max_model_len,
        default_max_tokens=args.default_max_tokens,
        fail_rate=args.fail_rate,
        seed=args.seed,
    )


def _list_profiles() -> None:
    for p in PROFILES.values():
        print(
            f"{p.name}: {p.description}; block_size={p.block_size} num_gpu_blocks={p.num_gpu_blocks} "
            f"max_num_seqs={p.max_num_seqs} max_num_batched_tokens={p.max_num_batched_tokens} "
            f"max_model_len={p.max_model_len}",
            flush=True,
        )


async def serve(config: SimFleetConfig) -> None:
    """Start the fleet, announce it, and wait for SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimFleet(config) as fleet:
        for s in fleet.servers:
            print(f"{s.id} {s.url} model={s.models[0]} profile={fleet.profile.name}", flush=True)
        print("ready", flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        _list_profiles()
        return 0
    try:
        config = config_from_args(args)
        SimFleet(config)  # validate before binding anything
    except ValueError as e:
        print(f"loadtest sim: {e}", flush=True)
        return 2
    try:
        asyncio.run(serve(config))
    except OSError as e:  # e.g. a port already in use
        print(f"loadtest sim: {e}", flush=True)
        return 1
    return 0
