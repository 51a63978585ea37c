"""Read the Terraform of ``infra/`` with python-hcl2: modules, their variables, outputs and defaults.

python-hcl2 keeps expressions as strings (``"${var.port}"``) and strips the quotes of string literals;
``literal()`` undoes its quoting where a test compares values.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
HCL_HINT = "python-hcl2 missing: uv sync (it is a dev dependency)"


def hcl2() -> Any:
    return pytest.importorskip("hcl2", reason=HCL_HINT)


def tf_files() -> list[Path]:
    return sorted(INFRA.rglob("*.tf"))


def module_dirs() -> list[str]:
    """Every folder with .tf files (the modules and the examples), relative to infra/."""
    return sorted({str(p.parent.relative_to(INFRA)) for p in tf_files()})


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        parsed: dict[str, Any] = hcl2().load(f)
    return parsed


def blocks(module: str, kind: str) -> dict[str, dict[str, Any]]:
    """``variable``, ``output``, ``module`` ... blocks of a module, by name (across its files)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((INFRA / module).glob("*.tf")):
        for block in parse(path).get(kind, []):
            for name, body in block.items():
                found[literal(name)] = body
    return found


def resources(module: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((INFRA / module).glob("*.tf")):
        for block in parse(path).get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[(literal(rtype), literal(name))] = body
    return found


def terraform_blocks(module: str) -> list[dict[str, Any]]:
    return [b for path in sorted((INFRA / module).glob("*.tf")) for b in parse(path).get("terraform", [])]


def variable_default(module: str, name: str) -> Any:
    return unquote(blocks(module, "variable")[name]["default"])


def literal(value: Any) -> Any:
    return unquote(value)


def unquote(value: Any) -> Any:
    """python-hcl2 >= 7 keeps string literals' quotes ('"us-central1"'); plain values otherwise."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items()}
    return value
