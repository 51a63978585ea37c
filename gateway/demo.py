"""``gateway demo``: simulated vLLM backends and one gateway, on this machine, with in-process state.

The simulator runs as a child process (``loadtest sim``) so that the gateway runs exactly as it does in
production (``gateway serve`` under granian); Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.config import ENV_CONFIG_FILE, load

SIM_START_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class SimBackend:
    id: str
    url: str
    model: str


def start_simulator(backends: int, base_port: int, time_scale: float) -> tuple[subprocess.Popen[str], list[SimBackend]]:
    command = [
        sys.executable, "-m", "loadtests.cli", "sim",
        "--backends", str(backends), "--base-port", str(base_port), "--time-scale", str(time_scale),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    found: list[SimBackend] = []
    assert process.stdout is not None
    for line in process.stdout:
        words = line.split()
        if words == ["ready"]:
            return process, found
        if len(words) >= 2 and words[1].startswith("http"):
            model = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("model=")), "")
            found.append(SimBackend(words[0], words[1], model))
    process.kill()
    raise RuntimeError("the simulator exited before it was ready")


def demo_config(backends: list[SimBackend], port: int, policy: str | None, redis_url: str | None = None) -> str:
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", ""]
    if policy:
        lines += ["[routing]", f'policy = "{policy}"', ""]
    if redis_url:
        lines += ["[coordination]", f'redis_url = "{redis_url}"', 'namespace = "demo"', ""]
    for b in backends:
        lines += ["[[fleet.backends]]", f'id = "{b.id}"', f'url = "{b.url}"', f'models = ["{b.model}"]', ""]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    from gateway.cli import run_granian

    if args.replicas > 1 and not args.redis_url:
        print("gateway demo: --replicas > 1 needs --redis-url (separate processes share state through Redis)")
        return 2
    process, backends = start_simulator(args.backends, args.backend_base_port, args.time_scale)
    replicas: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
            paths = []
            for i in range(args.replicas):
                path = Path(tmp) / f"demo-{i}.toml"
                path.write_text(demo_config(backends, args.port + i, args.policy, args.redis_url))
                paths.append(path)
            os.environ[ENV_CONFIG_FILE] = str(paths[0])
            config = load()  # the first replica runs in this process; its config fails loudly here
            for path in paths[1:]:
                command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)]
                replicas.append(subprocess.Popen(command, text=True))
            _print_usage(config.server.port, backends, args.replicas)
            run_granian(config)
    finally:
        children = [*replicas, process]
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
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
