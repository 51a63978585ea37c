"""A gateway config file written from a ``GatewayConfig`` value, never by string formatting.

Fields equal to their default are left out, so the file names only what the caller set and keeps
decoding when other sections gain fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from gateway.config import GatewayConfig


def _default_of(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return msgspec.NODEFAULT


def _without_defaults(value: Any) -> Any:
    """``value`` as TOML-ready builtins, struct fields equal to their default dropped.

    TOML has no null: a None that is not the field's default (``session_header = None``) cannot be written,
    and dropping it would silently bring the default back, so it is an error.
    """
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            if item == _default_of(field):
                continue
            if item is None:
                raise ValueError(f"{type(value).__name__}.{field.name} = None has no TOML form")
            out[field.encode_name] = _without_defaults(item)
        return out
    if isinstance(value, list | tuple):
        return [_without_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_defaults(v) for k, v in value.items() if v is not None}
    return msgspec.to_builtins(value)


def config_toml(config: GatewayConfig) -> str:
    """The TOML text of ``config``, defaults omitted."""
    return tomli_w.dumps(_without_defaults(config))


def write_config(config: GatewayConfig, path: Path) -> Path:
    """Write ``config`` to ``path`` (a file ``gateway serve --config`` reads); returns ``path``."""
    path.write_text(config_toml(config))
    return path
