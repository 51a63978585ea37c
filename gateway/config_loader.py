"""Loading the configuration, in three phases.

1. parse and defaults: the TOML file (``config_env.read_toml``) with the environment laid over it
   (``config_env.apply_env``), decoded strictly with every field's constraints. Only environment strings are
   converted to the field's type first (``GATEWAY_SERVER__PORT=9999``); a string in the file stays a string,
   so ``port = "21090"`` fails naming ``$.server.port`` instead of being coerced;
2. build plugins: ``routing.presets.resolve`` checks the routing preset - known scorers, their own
   parameters - the way the runner will build it;
3. validate: ``config.validate``, the cross-references.

It sits above ``gateway.config`` and ``gateway.routing``, so neither imports the other to load.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import msgspec

from gateway.config import ConfigError, GatewayConfig, validate
from gateway.config_env import ENV_CONFIG_FILE, ENV_PREFIX, apply_env, read_toml
from gateway.routing.presets import resolve


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """File (if any) + environment -> a validated config. Raises ConfigError naming the key."""
    config = _decode(_raw(path, os.environ if environ is None else environ))
    try:
        resolve(config.routing)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return validate(config)


def _raw(path: str | Path | None, environ: Mapping[str, str]) -> dict[str, Any]:
    path = path or environ.get(ENV_CONFIG_FILE)
    raw = apply_env(read_toml(path) if path else {}, environ)
    for name in environ:
        if name.startswith(ENV_PREFIX) and name != ENV_CONFIG_FILE:
            _convert_env_string([part.lower() for part in name[len(ENV_PREFIX) :].split("__")], raw)
    return raw


def _convert_env_string(path: list[str], raw: dict[str, Any]) -> None:
    """Turn the string ``apply_env`` put at ``path`` into the declared field's type, where it converts.

    A string that does not convert stays, and the strict decode names its key."""
    node = raw
    for part in path[:-1]:
        node = node[part]
    value, declared = node[path[-1]], _declared_type(path)
    if not isinstance(value, str) or declared is None:
        return
    for target in (declared, _strip_annotated(declared)):  # constraints are the decode's to report
        try:
            node[path[-1]] = msgspec.convert(value, target, strict=False)
            return
        except msgspec.ValidationError:
            continue


def _declared_type(path: list[str]) -> Any:
    """The type declared at ``path`` under GatewayConfig (through sections, optionals and dict values)."""
    declared: Any = GatewayConfig
    for part in path:
        declared = _strip_optional(_strip_annotated(declared))
        if isinstance(declared, type) and issubclass(declared, msgspec.Struct):
            declared = get_type_hints(declared, include_extras=True).get(part)
        elif get_origin(declared) is dict:
            declared = get_args(declared)[1]
        else:
            return None
        if declared is None:
            return None
    return declared


def _strip_annotated(declared: Any) -> Any:
    return get_args(declared)[0] if get_origin(declared) is Annotated else declared


def _strip_optional(declared: Any) -> Any:
    if get_origin(declared) in (Union, types.UnionType):
        rest = [arg for arg in get_args(declared) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else declared
    return declared


def _decode(raw: Mapping[str, Any]) -> GatewayConfig:
    try:
        return msgspec.convert(raw, GatewayConfig)  # strict: a string in the file is not a number
    except msgspec.ValidationError as e:
        raise ConfigError(f"invalid config: {e}") from e
