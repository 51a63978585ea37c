"""Size limits of the product code (gateway/, coordination/): functions of at most 60 lines, modules of at most 300.

A function's length runs from its ``def`` line (decorators excluded) to its last line, docstring included;
methods and nested functions count on their own (a nested function also counts towards its parent).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "coordination")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 300


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _long_functions(path: Path) -> list[tuple[int, str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.lineno, node.name, length))
    return sorted(found)


def test_there_is_code_to_check() -> None:
    assert _modules(), f"no modules under {PACKAGES}"


def test_no_function_is_longer_than_60_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}(): {length} lines"
        for path in _modules()
        for line, name, length in _long_functions(path)
    ]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_no_module_is_longer_than_300_lines() -> None:
    offenders = []
    for path in _modules():
        length = len(path.read_text(encoding="utf-8").splitlines())
        if length > MAX_MODULE_LINES:
            offenders.append(f"{path.relative_to(ROOT)}:1: {length} lines")
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)
