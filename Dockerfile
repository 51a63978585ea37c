# syntax=docker/dockerfile:1
# The gateway image: `gateway serve` under granian, as a non-root user, on a read-only root filesystem.
# The same image runs the vLLM simulator (`loadtest sim`) for the dev overlay (deploy/overlays/dev).
#
#   docker build -t vllm-fleet-gateway:dev .
#   docker run --rm -p 8080:8080 -v "$PWD/gateway.toml:/etc/gateway/gateway.toml:ro" vllm-fleet-gateway:dev
#
# Stage 1 builds the locked environment with uv; stage 2 is python:slim plus that venv and nothing else
# (no uv, no compilers: every dependency installs from a wheel).

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the project itself, installed as a wheel (not editable) so /src is not needed at run time.
COPY README.md ./
COPY gateway ./gateway
COPY coordination ./coordination
COPY loadtests ./loadtests
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_CONFIG_FILE=/etc/gateway/gateway.toml \
    GATEWAY_SERVER__HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# Liveness for plain Docker (Kubernetes uses the Deployment's probes). No curl in slim images: Python's urllib.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_SERVER__PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["gateway"]
CMD ["serve"]
