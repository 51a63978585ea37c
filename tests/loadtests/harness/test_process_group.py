"""ProcessGroup: stop kills the children a process forked; wait_ready times out quoting the stderr tail."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from loadtests.harness.process_group import StartError, free_port, http_ok, poll_until, spawn, wait_ready

# A parent that forks a child ignoring SIGTERM, prints the child's pid to stderr, then sleeps.
FORKER = """
import subprocess, sys, time
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)"
child = subprocess.Popen([sys.executable, "-c", IGNORES_TERM])
print(f"child={child.pid}", file=sys.stderr, flush=True)
time.sleep(30)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead


def _child_pid(group_tail: str) -> int:
    return int(next(w.split("=")[1] for w in group_tail.split() if w.startswith("child=")))


def test_stop_kills_the_whole_group() -> None:
    group = spawn("forker", [sys.executable, "-c", FORKER])
    try:
        deadline = time.monotonic() + 10
        while "child=" not in group.stderr_tail():
            assert time.monotonic() < deadline, "forker did not start"
            time.sleep(0.05)
        child = _child_pid(group.stderr_tail())
        assert _alive(child)
    finally:
        group.stop(grace_s=0.5)
    assert not group.alive()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_wait_ready_times_out_with_stderr_tail() -> None:
    script = "import sys, time; print('listening nowhere', file=sys.stderr, flush=True); time.sleep(30)"
    group = spawn("silent", [sys.executable, "-c", script])
    try:
        with pytest.raises(StartError, match=r"(?s)did not get ready within 1 s.*listening nowhere"):
            wait_ready(group, http_ok(f"http://127.0.0.1:{free_port()}/readyz"), timeout_s=1)
    finally:
        group.stop(grace_s=0.5)


def test_wait_ready_reports_an_exit_at_start() -> None:
    group = spawn("crasher", [sys.executable, "-c", "import sys; sys.exit('bad config')"])
    try:
        with pytest.raises(StartError, match=r"(?s)exited at start.*bad config"):
            wait_ready(group, lambda: False, timeout_s=10)
    finally:
        group.stop(grace_s=0.5)


def test_poll_until_is_false_on_timeout_and_the_temporary_log_goes_at_stop() -> None:
    group = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert poll_until(group, lambda: False, timeout_s=0.3) is False
        assert group.log_path.exists()
    finally:
        group.stop(grace_s=0.5)
    assert not group.log_path.exists()


def test_a_log_the_caller_named_is_kept(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    group = spawn("printer", [sys.executable, "-c", "print('to stdout', flush=True)"], log_path=log)
    group.process.wait(timeout=10)
    group.stop(grace_s=0.5)
    assert log.read_text() == "to stdout\n"
