"""The live screen of `sme run`: the watch's table, the load line and the next event, in one place.

`sme watch` runs in a child process and appends a line per sample to ``DIR/watch.jsonl``; each time the load
process reports (about once a second) the screen reads the samples it has not seen yet into
``sme.watch.live.History`` and draws ``sme.watch.live.table``, the table `sme watch` itself shows, with the
load's line (``sme.loadtest.runner.progress_text``) and the next event under it. On a terminal that is one
rich Live display; elsewhere (a log, CI) each new sample's line is printed as `sme watch` prints it, and the
load line every 10 seconds as `sme loadtest` does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from sme.watch.live import History, alerts, summary_line, table

PLAIN_EVERY = 10.0  # seconds between load lines when stderr is not a terminal
HEADROOM_ALERT = 10  # free addresses below which the table raises an alert (`sme watch --alert-headroom`)


class WatchTail:
    """The complete lines appended to the watch file since the last read (a torn last line waits)."""

    def __init__(self, path: Path):
        self.path, self.pos = path, 0

    def new_records(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except OSError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self.pos += len(complete)
        out = []
        for raw in complete.splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue  # not a sample (the watch writes nothing else): skipped, not fatal to the run
        return out


class RunScreen:
    def __init__(self, env: Any, watch_file: Path, next_event: Callable[[], str],
                 clock: Callable[[], float] = time.time):
        self.env, self.next_event, self.clock = env, next_event, clock
        self.watch = WatchTail(watch_file)
        self.history = History()
        self.last: dict[str, Any] | None = None
        self.alerts: list[str] = []
        self.load = "waiting for the load to start"
        self._live: Any = None
        self._printed = 0.0

    def progress(self, line: dict[str, Any]) -> None:
        """One progress line of the load process (``sme.loadtest.runner.run_loadtest``'s ``display``)."""
        from sme.loadtest.runner import progress_text

        if line.get("done"):
            self.close()
            return
        self.load = progress_text(line)
        fresh = self._read_watch()
        if self.env.interactive:
            self._draw()
            return
        for record in fresh:
            self.env.info(f"watch: {summary_line(record)}")
            for alert in self.alerts:
                self.env.info(f"ALERT {alert}")
        if time.monotonic() - self._printed >= PLAIN_EVERY:
            self._printed = time.monotonic()
            self.env.info(self.load)

    def render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts = [table(self.last, self.history, self.countdown(), self.alerts), Text(f"load: {self.load}")]
        upcoming = self.next_event()
        if upcoming:
            parts.append(Text(upcoming))
        return Group(*parts)

    def countdown(self) -> str:
        """When the watch takes its next sample (from the last one's due time and interval)."""
        from sme.units import format_duration

        if not self.last or self.last.get("due") is None or not self.last.get("interval"):
            return ""
        due = float(self.last["due"]) + float(self.last["interval"])
        return f"next sample (slot {int(self.last['slot']) + 1}) in {format_duration(max(0.0, due - self.clock()))}"

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _read_watch(self) -> list[dict[str, Any]]:
        fresh = self.watch.new_records()
        for record in fresh:
            self.history.add(record)
            if not record.get("missed"):
                self.last = record
            self.alerts = alerts(record, HEADROOM_ALERT)
        return fresh

    def _draw(self) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(self.render(), console=self.env.err, auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(self.render(), refresh=True)
