"""``gateway demo``: simulated vLLM backends and one gateway, on this machine, with in-process state.

The simulator runs as a child process (``loadtest sim``) so that the gateway runs exactly as it does in
production (``gateway serve`` under granian); Ctrl-C stops the gateway, and on the way out the simulator
and any extra replicas are stopped by process group (they run in sessions of their own, so the terminal's
Ctrl-C does not reach them, and their children go too). Processes are the harness's (``loadtests.harness``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from gateway.config import (
    CoordinationConfig,
    FleetConfig,
    GatewayConfig,
    RoutingConfig,
    ServerConfig,
)
from gateway.config_env import ENV_CONFIG_FILE
from gateway.config_loader import load
from loadtests.harness.gateway import GatewayServer, backend_configs, start_gateway
from loadtests.harness.gateway_toml import write_config
from loadtests.harness.process_group import StartError
from loadtests.harness.simulator import SimBackend, Simulator, start_simulator

SIM_START_TIMEOUT_S = 60


def demo_config(
    backends: list[SimBackend], port: int, policy: str | None, redis_url: str | None = None
) -> GatewayConfig:
    """One replica on ``port`` over the simulated backends; shared state in Redis when a URL is given."""
    return GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=port),
        routing=RoutingConfig() if policy is None else RoutingConfig(policy=policy),
        coordination=CoordinationConfig(redis_url=redis_url, namespace="demo") if redis_url else CoordinationConfig(),
        fleet=FleetConfig(backends=backend_configs(backends)),
    )


def _start_simulator(args: argparse.Namespace) -> Simulator:
    sim_args = [
        "--backends", str(args.backends), "--base-port", str(args.backend_base_port),
        "--time-scale", str(args.time_scale),
    ]  # fmt: skip
    return start_simulator(sim_args, expect=args.backends, timeout_s=SIM_START_TIMEOUT_S)


def _serve(args: argparse.Namespace, sim: Simulator, replicas: list[GatewayServer], tmp: Path) -> None:
    """Replicas 2..N as subprocesses (ready before the first starts), then the first in this process."""
    from gateway.cli import run_granian

    configs = [demo_config(sim.backends, args.port + i, args.policy, args.redis_url) for i in range(args.replicas)]
    first = write_config(configs[0], tmp / "demo-0.toml")
    os.environ[ENV_CONFIG_FILE] = str(first)
    config = load()  # the first replica runs in this process; its config fails loudly here
    for i, other in enumerate(configs[1:], start=1):
        replicas.append(start_gateway(other, tmp / f"demo-{i}.toml", log_path=tmp / f"demo-{i}.log"))
    _print_usage(config.server.port, sim.backends, args.replicas)
    run_granian(config)


def run_demo(args: argparse.Namespace) -> int:
    if args.replicas > 1 and not args.redis_url:
        print("gateway demo: --replicas > 1 needs --redis-url (separate processes share state through Redis)")
        return 2
    try:
        sim = _start_simulator(args)
    except StartError as e:  # the message quotes the simulator's log tail: a traceback would add nothing
        print(f"gateway demo: {e}", file=sys.stderr)
        return 1
    replicas: list[GatewayServer] = []
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
            try:
                _serve(args, sim, replicas, Path(tmp))
            except StartError as e:  # an extra replica did not get ready
                print(f"gateway demo: {e}", file=sys.stderr)
                return 1
            finally:
                for replica in replicas:  # before the directory holding their logs goes
                    replica.stop()
    finally:
        sim.stop()
    return 0


def _print_usage(port: int, backends: list[SimBackend], replicas: int = 1) -> None:
    model = backends[0].model if backends else "MODEL"
    base = f"http://127.0.0.1:{port}"
    others = f" (and {replicas - 1} more replicas on ports {port + 1}..{port + replicas - 1})" if replicas > 1 else ""
    print(
        f"""
vLLM fleet gateway demo: {len(backends)} simulated vLLM backends behind {base}{others}
  backends: {", ".join(f"{b.id}={b.url}" for b in backends)}

Try it:
  curl -N {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "{model}", "stream": true, "max_tokens": 32,
         "messages": [{{"role": "system", "content": "You are terse."}}, {{"role": "user", "content": "Hi"}}]}}'

  python -c "import openai; c = openai.OpenAI(base_url='{base}/v1', api_key='none');
for ch in c.chat.completions.create(model='{model}', stream=True,
        messages=[{{'role': 'user', 'content': 'Hi'}}]): print(ch.choices[0].delta.content or '', end='')"

  curl -si {base}/v1/completions -H 'content-type: application/json' \
    -d '{{"model": "{model}", "prompt": "Hello", "max_tokens": 8}}'   # see x-gateway-backend, x-gateway-route
  curl -s {base}/v1/models
  curl -s {base}/metrics | grep ^gateway_

Ctrl-C stops the gateway and the simulated backends.
""",
        flush=True,
    )
