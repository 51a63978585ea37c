"""The sweep's progress display on stderr."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from loadtests.run.plan import Cell


class Progress:
    """Progress on stderr: a status line while a cell runs (rewritten in place on a terminal, every 10 s
    otherwise) and one line when it ends."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.run_start = time.monotonic()
        self.cell: Cell | None = None
        self.phase = ""
        self.cell_start = 0.0
        self.done = 0
        self.issued = 0
        self.target = 0

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.run_start)
        return f"{s // 60}m{s % 60:02d}s"

    def start(self, cell: Cell, phase: str, target: int) -> None:
        self.cell, self.phase, self.target = cell, phase, target
        self.cell_start = time.monotonic()
        self.done = self.issued = 0
        self.line()

    def update(self, done: int, issued: int) -> None:
        self.done, self.issued = done, issued

    def line(self) -> None:
        if self.cell is None:
            return
        text = (
            f"[cell {self.cell.index}/{self.total}] {self.cell.label()} {self.phase}: {self.done}/{self.target} "
            f"requests done ({self.issued} sent), {time.monotonic() - self.cell_start:.0f} s, run {self._elapsed()}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, cell: Cell, summary: str) -> None:
        prefix = "\r\x1b[2K" if self.tty else ""
        self.stream.write(
            f"{prefix}[cell {cell.index}/{self.total}] {cell.label()}: {summary} (run {self._elapsed()})\n"
        )
        self.stream.flush()
        self.cell = None

    def note(self, text: str) -> None:
        prefix = "\r\x1b[2K" if self.tty else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    async def ticker(self) -> None:
        interval = 1.0 if self.tty else 10.0
        for _ in range(10_000_000):
            await asyncio.sleep(interval)
            self.line()
