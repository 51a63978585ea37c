"""The target granian's workers import: each worker process builds its app from the same config.

``gateway serve`` puts the config file's path in ``GATEWAY_CONFIG_FILE``; ``GATEWAY_*`` overrides are
inherited from the environment, so every worker resolves the identical config.
"""

from __future__ import annotations

import logging

from litestar import Litestar

from gateway.app import create_app
from gateway.config import load


def app_from_env() -> Litestar:
    config = load()
    logging.basicConfig(level=config.server.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # client libraries log a line per call at INFO: the health poller alone would flood the log
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return create_app(config)
