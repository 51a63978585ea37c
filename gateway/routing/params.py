"""Decoding a policy's parameters from the config table ``routing.params.<policy>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def convert_params(policy_type: str, params: Mapping[str, Any], kind: type[T]) -> T:
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as e:
        raise ValueError(f"routing.params.{policy_type}: {e}") from e
