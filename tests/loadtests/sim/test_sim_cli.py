"""``loadtest sim`` as other programs use it: a subprocess that prints ``ready``, serves, and exits on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx


async def test_cli_ready_serve_and_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtests",
        "sim",
        "--backends",
        "2",
        "--base-port",
        "0",
        "--profile",
        "tiny-cpu",
        "--time-scale",
        "0.1",
        "--model",
        "m1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "ready":
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line, "the simulator exited before printing ready"
            lines.append(line.decode().strip())
        servers = [line.split() for line in lines[:-1]]
        assert [s[0] for s in servers] == ["sim-0", "sim-1"]
        assert all(s[2] == "model=m1" for s in servers)
        async with httpx.AsyncClient() as client:
            for _, url, *_rest in servers:
                assert (await client.get(url + "/health")).status_code == 200
                r = await client.post(url + "/v1/completions", json={"model": "m1", "prompt": "hi", "max_tokens": 2})
                assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_rejects_bad_profile() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtests", "sim", "--profile", "nope", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert b"invalid choice" in err
