# The two set-up commands of README.md; each installs uv (if missing) and the locked environment first.
UV := ./scripts/uv

.PHONY: demo test lint typecheck

## demo: 4 simulated vLLM backends + a gateway on 127.0.0.1:8080 (no GPU, no Redis). Ctrl-C stops.
demo:
	$(UV) sync --frozen --quiet
	$(UV) run gateway demo

## test: the default test suite (what CI runs)
test:
	$(UV) sync --frozen --quiet
	$(UV) run pytest

## lint: ruff lint and format check
lint:
	$(UV) run ruff check . && $(UV) run ruff format --check .

## typecheck: mypy, strict, over the files listed in pyproject's [tool.mypy]
typecheck:
	$(UV) run mypy
