"""Loading the configuration, in three phases.

1. parse and defaults: ``config.parse`` (file + environment, decoded with every field's constraints);
2. build plugins: ``routing.presets.resolve`` checks the routing preset - known scorers, their own
   parameters - the way the runner will build it;
3. validate: ``config.validate``, the cross-references.

It sits above ``gateway.config`` and ``gateway.routing``, so neither imports the other to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.config import ConfigError, GatewayConfig, parse, validate
from gateway.routing.presets import resolve


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """File (if any) + environment -> a validated config. Raises ConfigError naming the key."""
    config = parse(path, environ)
    try:
        resolve(config.routing)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return validate(config)
