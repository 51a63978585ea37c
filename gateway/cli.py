"""``gateway serve | demo | check-config``: the composition root of a deployment."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from gateway.config import ConfigError, GatewayConfig
from gateway.config_env import ENV_CONFIG_FILE
from gateway.config_loader import load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible gateway for vLLM fleets")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a gateway replica under granian")
    serve.add_argument("--config", help="TOML config file (GATEWAY_* environment variables override it)")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    serve.add_argument("--workers", type=int, help="granian workers (overrides server.workers)")

    check = sub.add_parser("check-config", help="validate a config file and print the resolved config")
    check.add_argument("config", help="TOML config file")

    demo = sub.add_parser("demo", help="simulated vLLM backends + a gateway, no GPU, no Redis")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.add_argument("--backends", type=int, default=4, help="simulated vLLM servers (default 4)")
    demo.add_argument("--backend-base-port", type=int, default=0, help="first simulator port (default: free)")
    demo.add_argument("--policy", default=None, help="routing policy (default: the config default)")
    demo.add_argument("--time-scale", type=float, default=1.0, help="simulator speed factor (0.1 = 10x faster)")
    demo.add_argument("--replicas", type=int, default=1, help="gateway replicas on consecutive ports (needs Redis)")
    demo.add_argument("--redis-url", default=None, help="share fleet state through this Redis (redis://...)")

    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "serve":
            return _serve(args.config, host=args.host, port=args.port, workers=args.workers)
        from gateway.demo import run_demo  # the only path that starts the simulator

        return run_demo(args)
    except ConfigError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 2


def _check_config(path: str) -> int:
    config = load(path)
    print(msgspec.json.format(msgspec.json.encode(redacted(config))).decode())
    print(f"{path}: OK", file=sys.stderr)
    return 0


REDACTED = "***"


def redacted(config: GatewayConfig) -> dict[str, Any]:
    """The config as plain data with its secrets replaced by ``***``: the Redis and Sentinel passwords and
    the credentials in URLs (``redis://user:***@host``, ``?password=***``)."""
    out: dict[str, Any] = msgspec.to_builtins(config)
    coordination = out["coordination"]
    for key in ("password", "sentinel_password"):
        if coordination[key] is not None:
            coordination[key] = REDACTED
    if coordination["redis_url"] is not None:
        coordination["redis_url"] = redact_url(coordination["redis_url"])
    for backend in out["fleet"]["backends"]:
        backend["url"] = redact_url(backend["url"])
    return out


def redact_url(url: str) -> str:
    """``scheme://user:secret@host/...?password=secret`` -> ``scheme://user:***@host/...?password=***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"
    query = "&".join(
        f"{item.partition('=')[0]}={REDACTED}" if item.partition("=")[0].lower() == "password" else item
        for item in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _serve(config_path: str | None, *, host: str | None, port: int | None, workers: int | None) -> int:
    for key, value in (("SERVER__HOST", host), ("SERVER__PORT", port), ("SERVER__WORKERS", workers)):
        if value is not None:
            os.environ[f"GATEWAY_{key}"] = str(value)
    if config_path:
        os.environ[ENV_CONFIG_FILE] = str(Path(config_path).resolve())
    config = load()  # fail here, with the key named, before any worker starts
    run_granian(config)
    return 0


def run_granian(config: GatewayConfig) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    if config.server.workers > 1:
        _prepare_multiprocess_metrics()
    Granian(
        "gateway.asgi:app_from_env",
        factory=True,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        workers=config.server.workers,
        log_access=config.server.access_log,
    ).serve()


def _prepare_multiprocess_metrics() -> None:
    """Workers' metrics add up only through prometheus-client's multiprocess directory
    (docs/proxy-path-costs.md)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Stale files from a previous run would add up too. Empty it rather than re-create it: it may be a
        # mounted volume (an emptyDir), which cannot be removed.
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for child in path.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")


if __name__ == "__main__":
    sys.exit(main())
