"""The environment a command runs in: output streams, verbosity and the clock.

Rendering takes a console from here rather than reaching for a global, so tests can swap it (httpie's
``Environment``). rich is imported lazily.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TextIO


@dataclass
class Env:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    verbose: bool = False
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _out: Any = None
    _err: Any = None

    @property
    def out(self) -> Any:
        """A rich Console on stdout (results: tables, JSON)."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(file=self.stdout, highlight=False, soft_wrap=False)
        return self._out

    @property
    def err(self) -> Any:
        """A rich Console on stderr (progress, live displays, messages)."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(file=self.stderr, highlight=False, stderr=True)
        return self._err

    @property
    def interactive(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())

    def info(self, message: str) -> None:
        self.err.print(message, markup=False)

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[int], None] | None]:
        """A progress bar on a terminal (yields a callback taking bytes done); nothing otherwise."""
        if not self.interactive:
            yield None
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress(label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=self.err, transient=True)
        bar.start()
        task = bar.add_task(label, total=total)
        try:
            yield lambda n: bar.update(task, advance=n)
        finally:
            bar.stop()

    def status_line(self) -> "StatusLine":
        return StatusLine(self)


class StatusLine:
    """A live line on a terminal; on a pipe (logs, CI), one line each time ``key`` changes."""

    def __init__(self, env: Env):
        self.env = env
        self.live: Any = None
        self.last: str | None = None

    def show(self, text: str, key: str) -> None:
        if self.env.interactive:
            from rich.text import Text  # plain text: a status from AWS is never read as markup

            if self.live is None:
                from rich.live import Live

                self.live = Live(Text(text), console=self.env.err, transient=False, refresh_per_second=4)
                self.live.start()
            self.live.update(Text(text))
        elif key != self.last:
            self.env.info(text)
        self.last = key

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
