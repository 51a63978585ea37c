"""``loadtest sim`` as a subprocess: started in its own process group, ready once it printed ``ready``.

The simulator announces each server on stdout (``sim-0 http://127.0.0.1:8001 model=M profile=P``) and then
``ready``; its ports are free ones it chose itself, so the announcement is the only place they are known.
Reading is bounded: the pipe is polled with ``select`` against a deadline, so a simulator that hangs before
``ready`` fails the start instead of blocking the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.harness.process_group import START_TIMEOUT_S, ProcessGroup, StartError, spawn


@dataclass(frozen=True, slots=True)
class SimBackend:
    id: str
    url: str
    model: str


@dataclass
class Simulator:
    group: ProcessGroup
    backends: list[SimBackend]

    def stop(self) -> None:
        self.group.stop()

    def kill(self) -> None:
        """SIGKILL the simulator's group at once: every server it runs goes down together, like a node loss."""
        self.group.kill()


def sim_command(args: Sequence[str]) -> list[str]:
    """``loadtest sim ARGS``, on free ports unless ``--base-port`` is given."""
    command = [sys.executable, "-m", "loadtests.cli", "sim", *args]
    if "--base-port" not in args:
        command += ["--base-port", "0"]
    return command


def parse_backend(line: str) -> SimBackend | None:
    """One announcement line as a backend; None for any other line."""
    words = line.split()
    if len(words) < 2 or not words[1].startswith("http"):
        return None
    model = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("model=")), "")
    return SimBackend(words[0], words[1], model)


def read_announcement(group: ProcessGroup, timeout_s: float = START_TIMEOUT_S) -> list[SimBackend]:
    """The backends the simulator announces, once it printed ``ready``; StartError on exit or timeout."""
    assert group.process.stdout is not None, "spawn the simulator with stdout_pipe=True"
    fd = group.process.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    found: list[SimBackend] = []
    other: list[str] = []  # the simulator reports its own start errors on stdout: kept for the message
    pending = b""
    while True:
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            if line.split() == ["ready"]:
                return found
            if (backend := parse_backend(line)) is not None:
                found.append(backend)
            else:
                other = [*other[-9:], line]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StartError(f"{group.name} did not print 'ready' within {timeout_s:g} s:\n{_output(group, other)}")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                # End of file: the process is exiting; let it finish writing its log before quoting it.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    group.process.wait(timeout=2)
                raise StartError(f"{group.name} exited before it was ready:\n{_output(group, other)}")
            pending += chunk


def _output(group: ProcessGroup, other: list[str]) -> str:
    """What the simulator said: its last stdout lines that were not announcements, and its log's tail."""
    return "\n".join([*other, group.stderr_tail()]).strip()


def spawn_simulator(args: Sequence[str], *, log_path: Path | None = None, name: str = "sim") -> ProcessGroup:
    return spawn(name, sim_command(args), log_path=log_path, stdout_pipe=True)


def _checked(group: ProcessGroup, found: list[SimBackend], expect: int | None) -> Simulator:
    if expect is not None and len(found) != expect:
        raise StartError(f"{group.name} announced {len(found)} servers, expected {expect}")
    return Simulator(group, found)


def start_simulator(
    args: Sequence[str],
    *,
    log_path: Path | None = None,
    expect: int | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Simulator:
    """``loadtest sim ARGS`` until ``ready``; stopped again if it does not get there (or announces too few)."""
    group = spawn_simulator(args, log_path=log_path)
    try:
        return _checked(group, read_announcement(group, timeout_s), expect)
    except BaseException:
        group.stop()
        raise


async def start_simulator_async(
    args: Sequence[str],
    *,
    log_path: Path | None = None,
    expect: int | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Simulator:
    """``start_simulator`` for a running event loop: the bounded read runs in a thread. Spawning here (not in
    the thread) means a cancelled caller still holds the group to stop; stopping it ends the read (EOF)."""
    group = spawn_simulator(args, log_path=log_path)
    try:
        found = await asyncio.to_thread(read_announcement, group, timeout_s)
        return _checked(group, found, expect)
    except BaseException:
        await asyncio.to_thread(group.stop)
        raise
