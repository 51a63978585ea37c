"""The configuration's raw form: the TOML file, with ``GATEWAY_*`` environment overrides laid over it.

``GATEWAY_SECTION__KEY=value`` sets ``section.key`` (``GATEWAY_COORDINATION__REDIS_URL=redis://...``); a
value starting with ``[`` or ``{`` is JSON. The strings stay strings here; ``gateway.config_loader`` converts
the environment's to each field's declared type before the strict decode.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config import ConfigError

ENV_PREFIX = "GATEWAY_"
ENV_CONFIG_FILE = "GATEWAY_CONFIG_FILE"


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e


def apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Lay ``GATEWAY_A__B=value`` over ``raw['a']['b']``; the decode step converts the strings."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {'.'.join(path)} is not a table")
            node = child
        node[path[-1]] = _env_value(name, value)
    return raw


def _env_value(name: str, value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError(f"environment {name}: invalid JSON: {e}") from e
    return value
