"""A server subprocess in its own session (process group): spawn, wait ready by HTTP probe, stop the group.

Every wait is bounded. Stopping sends SIGTERM to the whole group, waits ``grace_s``, then SIGKILLs the group,
so workers a server forked (granian's) go too. Output goes to a log file (the caller's, or a temporary one
removed at stop) so a start failure can quote its tail and no pipe can fill up and block the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
STDERR_TAIL_BYTES = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StartError(RuntimeError):
    """A process exited at start or did not get ready in time; the message quotes its stderr tail."""


@dataclass
class ProcessGroup:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = None
    _owns_log: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The end of the log (stderr, and stdout unless piped), for error messages."""
        with contextlib.suppress(OSError):
            data = self.log_path.read_bytes()
            return data[-limit:].decode(errors="replace")
        return ""

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL the group; never raises."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_s)
        self._signal_group(signal.SIGKILL)  # whatever the leader left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
            if self._owns_log:
                self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the whole group at once, like a pod kill."""
        self.stop(grace_s=0)


def spawn(
    name: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    stdout_pipe: bool = False,
) -> ProcessGroup:
    """Start ``command`` in a new session, output to ``log_path`` (else a temp file); ``stdout_pipe`` keeps
    stdout readable for a server that announces itself there (the simulator)."""
    owns_log = log_path is None
    if log_path is None:
        fd, raw = tempfile.mkstemp(prefix=f"{name.replace(':', '-')}-", suffix=".log")
        os.close(fd)
        log_path = Path(raw)
    log = open(log_path, "ab")  # noqa: SIM115 - closed by ProcessGroup.stop
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    except OSError:
        log.close()
        raise
    return ProcessGroup(name, process, log_path, log, owns_log)


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1).status_code == 200
        return False

    return probe


def poll_until(group: ProcessGroup, probe: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``probe`` until true (True) or ``timeout_s`` passes (False); StartError if the process exits."""
    deadline = time.monotonic() + timeout_s
    while not probe():
        if not group.alive():
            raise StartError(f"{group.name} exited at start (code {group.process.returncode}):\n{group.stderr_tail()}")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_ready(group: ProcessGroup, probe: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``probe`` until it says ready; StartError (with the log tail) on exit or timeout."""
    if not poll_until(group, probe, timeout_s):
        raise StartError(f"{group.name} did not get ready within {timeout_s:g} s:\n{group.stderr_tail()}")
