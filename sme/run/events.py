"""Firing a run's events on time, and the run's record of what happened (``DIR/run.json``).

``Schedule`` is pure: which events are due ``elapsed`` seconds after the load started. ``EventRunner``
runs it in a thread with an injected clock and wait (tests drive it without sleeping): it waits until
the load has really started (the load process's first row), then fires each event when due and keeps
what it did in the ``RunLog``. An event that fails is recorded with its error; it never stops the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sme.run.config import Event

RUN_LOG = "run.json"


class Schedule:
    """The events not fired yet, in time order."""

    def __init__(self, events: tuple[Event, ...] | list[Event]):
        self.pending = sorted(events, key=lambda e: (e.at, e.number))

    def pop_due(self, elapsed: float) -> Event | None:
        """The next event due ``elapsed`` seconds into the load (taken off the schedule), or None."""
        if self.pending and self.pending[0].at <= elapsed:
            return self.pending.pop(0)
        return None

    def next_at(self) -> float | None:
        return self.pending[0].at if self.pending else None


@dataclass
class RunLog:
    """What the run did, written atomically to ``DIR/run.json`` after every change (a Ctrl-C or a crash
    leaves the record of everything up to it)."""

    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, **values: Any) -> None:
        with self.lock:
            self.data.update(values)
            self._save()

    def phase(self, name: str, **values: Any) -> None:
        """A phase (deploy, load, report, teardown) started, or, with ``outcome=``, ended."""
        with self.lock:
            phases = self.data.setdefault("phases", [])
            current = next((p for p in phases if p["phase"] == name), None)
            if current is None:
                phases.append({"phase": name, "started": time.time(), **values})
            else:
                current.update(values, ended=time.time())
            self._save()

    def event(self, record: dict[str, Any]) -> None:
        with self.lock:
            events = self.data.setdefault("events", [])
            events[:] = [e for e in events if e.get("number") != record.get("number")] + [record]
            events.sort(key=lambda e: e.get("number", 0))
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        import json

        from sme.state import write_atomic

        write_atomic(self.path, json.dumps(self.data, indent=2, default=str) + "\n", mode=0o644)


Fire = Callable[[Event, Callable[[], bool]], dict[str, Any]]


class EventRunner:
    """Fires the schedule in a thread: ``start()``, then ``stop()`` (which also asks a running event to stop)."""

    def __init__(self, events: tuple[Event, ...], fire: Fire, log: RunLog, load_started: Callable[[], float | None],
                 say: Callable[[str], None], clock: Callable[[], float] = time.time,
                 wait: Callable[[float], bool] | None = None, concurrent: bool = True):
        self.schedule = Schedule(events)
        self.concurrent = concurrent
        self.workers: list[threading.Thread] = []
        self.fire, self.log, self.load_started, self.say, self.clock = fire, log, load_started, say, clock
        self._stopped = threading.Event()
        self.wait = wait or self._stopped.wait  # True when asked to stop
        self.thread: threading.Thread | None = None
        self.t0: float | None = None

    def start(self) -> "EventRunner":
        self.thread = threading.Thread(target=self.run, name="sme-run-events", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 120.0) -> None:
        self._stopped.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def stopped(self) -> bool:
        return self._stopped.is_set()

    def next_event(self) -> str:
        """'deploy sme-v2.yaml in 1m20s' (for the screen), or '' when none is left."""
        from sme.units import format_duration

        nxt = self.schedule.pending[0] if self.schedule.pending else None
        if nxt is None or self.t0 is None:
            return ""
        return f"next: {nxt.what} in {format_duration(max(0.0, self.t0 + nxt.at - self.clock()))}"

    def run(self) -> None:
        while self.t0 is None:
            self.t0 = self.load_started()
            if self.t0 is None and self.wait(0.2):
                return
        self.log.set(load_started_at=self.t0)
        if self.schedule.pending:
            self.say(self.next_event())
        try:
            self._run_schedule()
        finally:
            for worker in self.workers:  # an update still running is waited for (it watches stopped() itself)
                worker.join()

    def _run_schedule(self) -> None:
        assert self.t0 is not None
        while not self.stopped():
            event = self.schedule.pop_due(self.clock() - self.t0)
            if event is not None:
                self._start(event)
                continue
            nxt = self.schedule.next_at()
            if nxt is None:
                return
            if self.wait(min(max(0.0, nxt - (self.clock() - self.t0)), 1.0)):
                return

    def _start(self, event: Event) -> None:
        """Each event in a thread of its own: a zone failure at 80m fires on time while an update started at
        30m is still shifting traffic (an update takes minutes on AWS). ``concurrent=False`` (tests) fires inline."""
        if not self.concurrent:
            self._fire(event)
            return
        worker = threading.Thread(target=self._fire, args=(event,), name=f"sme-run-event-{event.number}", daemon=True)
        self.workers.append(worker)
        worker.start()

    def _fire(self, event: Event) -> None:
        fired = self.clock()
        assert self.t0 is not None
        base = {"number": event.number, "kind": event.kind, "what": event.what, "at_s": event.at,
                "fired_at": fired, "late_s": round(fired - self.t0 - event.at, 3)}
        self.log.event({**base, "outcome": "running"})
        self.say(f"event {event.number}: {event.what} (at {event.at:g}s of the load)"
                 + (f"; {self.next_event()}" if self.schedule.pending else ""))
        try:
            result = self.fire(event, self.stopped)
        except Exception as exc:  # noqa: BLE001 - an event that cannot be carried out is recorded, not fatal
            from sme.errors import SmeError

            text = exc.render() if isinstance(exc, SmeError) else f"{type(exc).__name__}: {exc}"
            result = {"outcome": "error", "error": text}
        record = {**base, **result, "ended_at": self.clock()}
        self.log.event(record)
        self.say(f"event {event.number}: {event.what}: {record.get('summary') or record['outcome']}")
        if self.schedule.pending:
            self.say(self.next_event())
