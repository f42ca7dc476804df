"""The environment a command runs in: output streams, verbosity and the clock.

Rendering takes a console from here rather than reaching for a global, so tests can swap it (httpie's
``Environment``). rich is imported lazily.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO


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

