"""The repository stands alone: no tracked text file names a file or directory outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Built from pieces so that this file does not name them itself.
FORBIDDEN = ("FACTS" + "-proxy", "../" + "shared", "/work/" + "shared")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout: {error}")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_names_anything_outside_the_repo() -> None:
    offenders: list[str] = []
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        for number, line in enumerate(text.splitlines(), 1):
            for word in FORBIDDEN:
                if word in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {word}")
    assert not offenders, "files name things outside the repository:\n" + "\n".join(offenders)
