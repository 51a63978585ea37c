"""Run checkov (once per test session) over deploy/, infra/ and the Dockerfile.

checkov lives in its own environment (`uv tool install checkov==3.3.30`): it pins a fork of python-hcl2
(bc-python-hcl2) that installs the same `hcl2` module as the python-hcl2 the infra tests use, so the two
cannot share the project's virtualenv. It runs offline: no guideline download, no platform calls.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import REPO, kubectl, uv_tool_bin

CHECKOV_HINT = "checkov not found: install it with `uv tool install checkov==3.3.30` (or set CHECKOV to its path)"
TARGETS = {"deploy": ["-d", "deploy"], "infra": ["-d", "infra"], "Dockerfile": ["-f", "Dockerfile"]}


def checkov() -> str | None:
    candidates = [os.environ.get("CHECKOV"), shutil.which("checkov"), str(uv_tool_bin() / "checkov")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@functools.cache
def reports() -> dict[str, list[dict[str, Any]]]:
    """checkov's JSON report of each target, one entry per framework (kubernetes, kustomize, terraform, ...).

    The three scans run at once (a few seconds each, mostly start-up)."""
    binary = checkov()
    if binary is None:
        pytest.skip(CHECKOV_HINT)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    kubectl_path = kubectl()
    if kubectl_path:  # the kustomize framework renders with kubectl
        env["PATH"] = os.pathsep.join([str(Path(kubectl_path).parent), env.get("PATH", "")])
    base = [binary, "--skip-download", "--compact", "-o", "json"]
    running = {
        target: subprocess.Popen(
            base + args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for target, args in TARGETS.items()
    }
    found = {}
    for target, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        assert stdout.strip(), f"checkov printed no report for {target}:\n{stderr[-3000:]}"
        found[target] = _documents(stdout)
    return found


def _documents(text: str) -> list[dict[str, Any]]:
    decoder, index, docs = json.JSONDecoder(), 0, []
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        doc, index = decoder.raw_decode(text, index)
        docs += doc if isinstance(doc, list) else [doc]
    return docs


def results(target: str, kind: str) -> list[dict[str, Any]]:
    """``failed_checks``, ``skipped_checks`` or ``passed_checks`` of every framework that scanned ``target``."""
    return [check for framework in reports()[target] for check in framework.get("results", {}).get(kind, [])]


def frameworks(target: str) -> set[str]:
    return {f["check_type"] for f in reports()[target]}


def describe(check: dict[str, Any]) -> str:
    return f"{check['check_id']} {check.get('check_name', '')} in {check.get('file_path')} ({check.get('resource')})"
