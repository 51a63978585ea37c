"""One process harness for simulators, gateways and redis-server (``gateway demo``, ``loadtest run``, the tests).

Each server runs in its own session on 127.0.0.1 and is stopped by process group (SIGTERM, bounded wait,
SIGKILL); every wait is bounded; a gateway's config file is always an encoded ``GatewayConfig``.
Modules: ``process_group`` (spawn/wait/stop), ``simulator``, ``gateway``, ``gateway_toml``, ``redis``.
"""
