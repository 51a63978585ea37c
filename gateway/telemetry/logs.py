"""Structured logs: one JSON object per line, carrying the request and trace ids when there are any.

``configure_logging`` installs the formatter on the root logger; ``request_line`` is the one line a
request writes when it ends (the success path logs nothing else: docs/proxy-path-costs.md measures what
per-request log lines cost). Client libraries that log every call at INFO are turned down to WARNING.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
REQUEST_LOGGER = "gateway.requests"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_request_log = logging.getLogger(REQUEST_LOGGER)


def request_lines_on() -> bool:
    """Whether request lines are written (checked first, so a replica at WARNING builds none)."""
    return _request_log.isEnabledFor(logging.INFO)


def request_line(**fields: Any) -> None:
    """One line per finished request (at INFO: set server.log_level = WARNING to drop them)."""
    if _request_log.isEnabledFor(logging.INFO):
        _request_log.info("request", extra={k: v for k, v in fields.items() if v is not None})
