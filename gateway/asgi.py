"""The target granian's workers import: each worker process builds its app from the same config.

``gateway serve`` puts the config file's path in ``GATEWAY_CONFIG_FILE``; ``GATEWAY_*`` overrides are
inherited from the environment, so every worker resolves the identical config.
"""

from __future__ import annotations

from litestar import Litestar

from gateway.app import create_app
from gateway.config_loader import load
from gateway.telemetry.logs import configure_logging
from gateway.telemetry.tracing import Tracing


def app_from_env() -> Litestar:
    config = load()
    configure_logging(config.server.log_level)
    return create_app(config, tracing=Tracing.from_env())
