"""The master's (or local runner's) bookkeeping in the load process: merge, sample, report, finish.

Once a second it merges what the processes recorded, notes the stage and the users or target rate for
that second, appends the seconds whose batches are in to ``timeseries.csv``, checks finished ladder steps
against the SLO, and appends one progress line (JSON) for the parent's live display; every
SUMMARY_EVERY_S it replaces ``summary.json`` with one marked ``in_progress`` (atomically), so that a
killed run keeps what it measured. That file is written and synced on a native thread: a sync can take
hundreds of milliseconds on a busy disk, and on the loop it would stall every request in flight, and be
measured as their latency (a streamed answer's tokens wait behind it). ``finish`` writes the final tally (whole-run and per-stage counts,
errors, dropped) once, at the normal end or when the run is interrupted. Runs only in the load process
(uses gevent). Nothing here grows with the run's length.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from sme.loadtest.config import Stage
from sme.loadtest.results import stream_numbers
from sme.loadtest.shapes import Schedule
from sme.loadtest.slo import evaluate
from sme.loadtest.stats import Recorder, Tally, Window
from sme.loadtest.timeseries import TimeseriesFile, row

LAG_S = 2  # seconds a worker's batch may take to reach the master (live display window, rows)
SUMMARY_EVERY_S = 5  # how often summary.json is refreshed while the run goes
FINAL_WAIT_S = 15.0  # how long a master waits, once stopped, for a worker's last batch
STOP_AGAIN_S = 2.0  # ... and after how long it tells a worker that has not sent it to stop, itself


class Progress:
    def __init__(self, plan: dict[str, Any], schedule: Schedule, recorder: Recorder, runner: Any):
        self.plan, self.schedule, self.recorder, self.runner = plan, schedule, recorder, runner
        self.local = not hasattr(runner, "clients")
        self.tally = Tally()
        self.started_at: float | None = None
        self.states: dict[int, list] = {}  # second -> [stage, users, target rate], until its row is written
        self._last_state: list = [None, None, None]
        self.rows: TimeseriesFile | None = None
        self._summary_at = 0.0
        self._summary_write: Any = None  # the in-progress summary being written on a native thread
        self.steps: dict[int, dict[str, Any]] = {}
        self.breach: int | None = None
        self.sample: dict[str, Any] | None = None
        self.finished = False
        self.interrupted = False
        self._stop_seen: float | None = None
        self.local_sample: Any = lambda: None
        self.after_stop: Any = lambda: None
        self.stop_workers: Any = lambda ids: None  # a master: send "stop" to these workers (locustfile)
        self.drain: Any = lambda: None  # waits for what is still owed (an asynchronous endpoint's results)
        self.extra: Any = lambda: {}  # more for the final tally (the asynchronous requests' accounting)
        self.workers_seen: set[str] = set()  # a master: the workers that reported a batch
        self.finals: set[str] = set()  # ... and those whose last batch (sent when they stop) is in
        self._out = open(plan["progress"], "a", buffering=1)
        self._parent = os.getppid()  # the sme CLI: if it dies, this run stops instead of loading on alone

    def start(self, t0: float) -> None:
        """Start the clock at wall time t0 (now, or a moment ahead for the open model's common start)."""
        self.started_at = t0
        self._t0 = time.perf_counter() + (t0 - time.time())
        self.tally.stage_of = lambda sec: self.schedule.stage_of_second(sec - t0)
        self.tally.steady_of = lambda sec, stage: int(sec - t0) in self.schedule.steady_seconds(stage)
        self.tally.first_second = int(t0)
        if self.plan.get("out"):
            self.rows = TimeseriesFile(Path(self.plan["out"]) / "timeseries.csv",
                                       stream=bool(self.plan["target"].get("stream")))
        self.end_elapsed: float | None = None
        gevent.spawn(self._loop)

    def _stop_if_orphaned(self) -> None:
        if os.getppid() != self._parent and not os.path.exists(self.plan["stop_file"]):
            open(self.plan["stop_file"], "a").close()  # as if the user pressed Ctrl-C: stop, write what we have

    def _stop_if_stuck(self) -> None:
        """A stop asked for while Locust ramps users up (its shape tick blocks for the whole ramp):
        stop from here instead. Locust then quits and ``finish`` runs from its quitting event."""
        if self._stop_seen is None:
            if os.path.exists(self.plan["stop_file"]):
                self._stop_seen = time.monotonic()
            return
        if self.end_elapsed is None and time.monotonic() - self._stop_seen > 2.0:
            self.interrupted = True
            self.end_elapsed = max(0.0, min(self.elapsed(), self.schedule.end))
            gevent.spawn(self._stop_then_finish)

    def _stop_then_finish(self) -> None:
        """As ``end_if_due`` does from the shape's greenlet: stop (the workers send their last batches), wait
        for those batches, write the results, and only then quit. Left to Locust's own quit, a master on a
        starved machine could write its results before a worker's last batch arrived.

        Runner.stop kills the shape's greenlet (this is not it), and that ends Locust main's wait on it: main
        quits at once, which sends the workers "quit" and stops the master's listener 0.5 s later. A worker
        still in a request stops later than that, and its last batch came to nobody. Main's quit waits here
        until the results are written."""
        done = gevent.event.Event()
        quit_now = self.runner.quit

        def quit_when_done() -> None:
            done.wait()
            quit_now()

        self.runner.quit = quit_when_done
        try:
            self.runner.stop()
            self.finish(interrupted=True)
        finally:
            done.set()
        quit_now()

    def wait_for_finals(self, timeout: float = FINAL_WAIT_S) -> None:
        """A master: every worker that reported sends its last batch when it stops; wait (bounded) for them,
        and say in the log when one never came (the counts are then short by what it held)."""
        deadline = time.monotonic() + timeout
        again = time.monotonic() + STOP_AGAIN_S
        while self.workers_seen - self.finals and time.monotonic() < deadline:
            if again is not None and time.monotonic() >= again:
                # Locust's master sends no "stop" when it holds its workers for stopped or missing (a heartbeat
                # late on a busy machine): such a worker loads on and its last batch never comes. Ask it here
                # (a worker that had stopped ignores a second stop: Locust fires test_stop once)
                again = None
                late = sorted(self.workers_seen - self.finals)
                logging.getLogger("sme").warning("%d worker(s) had not sent their last batch %.0f s after the stop: "
                                                 "telling them to stop: %s", len(late), STOP_AGAIN_S, ", ".join(late))
                self.stop_workers(late)
            gevent.sleep(0.05)
        missing = sorted(self.workers_seen - self.finals)
        if missing:
            logging.getLogger("sme").warning("the last batch of %d worker(s) did not arrive within %.0f s: %s; "
                                             "their last requests are not counted", len(missing), timeout,
                                             ", ".join(missing))

    def end_if_due(self) -> bool:
        """Called by the shape's once-a-second tick: within the last second, stop exactly on time.

        It runs in the shape's greenlet on purpose: Locust quits when that greenlet ends, so the
        graceful stop and the last batches from workers are in before anything shuts down.
        """
        if os.path.exists(self.plan["stop_file"]):  # the parent was asked to stop: end now, gracefully
            self.interrupted = True
            self.schedule.end = min(self.schedule.end, max(self.elapsed(), 0.0))
        left = self.schedule.end - self.elapsed()
        if left > 1.05:
            return False
        gevent.sleep(max(0.0, left))
        self.end_elapsed = min(self.elapsed(), self.schedule.end)
        self.runner.stop()  # graceful: users finish their request; workers send their last batch
        self.finish(interrupted=self.interrupted)
        self.after_stop()
        return True

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _collect(self) -> None:
        # a master sends no requests, but its own CPU counts (it merges every worker's batches)
        self.tally.add(self.recorder.drain(wire=False))

    def _loop(self) -> None:
        while not self.finished:
            self._collect()
            t = self.elapsed()
            stage = self.schedule.stage_at(t)
            rate = self.schedule.rate_at(t) if self.schedule.open else None
            self.states[int(time.time())] = [stage, self.runner.user_count, rate]
            # local: every second before this one is in; workers' batches take up to LAG_S to arrive
            self._write_rows(int(time.time()) - (0 if self.local else LAG_S))
            self._check_steps(t)
            self._stop_if_orphaned()
            self._stop_if_stuck()
            self._out.write(json.dumps(self._line(t, stage, rate)) + "\n")
            if time.monotonic() - self._summary_at >= SUMMARY_EVERY_S:
                self._summary_at = time.monotonic()
                self._write_summary(self.snapshot(interrupted=False), in_progress=True)
            gevent.sleep(1.0 - (time.time() % 1.0) + 0.05)

    def _write_rows(self, before: int) -> None:
        """Settle the seconds before ``before``: append their rows, forget what they no longer need."""
        rows = []
        for sec, w in self.tally.settle(before):
            self._last_state = self.states.pop(sec, self._last_state)
            _, users, rate = self._last_state  # the stage column: the one the second's requests count in
            rows.append(row(sec, self.started_at, w, [self.tally.stage_of(sec), users, rate],
                            bool(self.plan["target"].get("stream"))))
        for sec in [s for s in self.states if s < before]:  # (a second before the start)
            self._last_state = self.states.pop(sec)
        if self.rows is not None:
            self.rows.append(rows)

    def _line(self, t: float, stage: int | None, rate: float | None) -> dict[str, Any]:
        end = int(time.time()) - (0 if self.local else LAG_S - 1)  # seconds before this are settled
        start = max(end - 3, int(self.started_at or 0))
        w = self.tally.window(start, end)  # the last few settled seconds (kept RETAIN_S)
        p50, p99 = w.percentiles_ms(50.0, 99.0)
        return {"elapsed": round(max(0.0, t), 1), "remaining": round(max(0.0, self.schedule.end - t), 1), "stage": stage,
                "users": None if self.schedule.open else self.runner.user_count, "rate": rate,
                "requests": self.tally.requests, "failures": self.tally.failures, "dropped": self.tally.dropped,
                "rps": round(w.requests / max(1, end - start), 1), "p50": p50, "p99": p99, "breach": self.breach}

    def _check_steps(self, t: float) -> None:
        slo = self.plan.get("slo") or {}
        for i, (start, end) in enumerate(self.schedule.bounds):
            stage = self.schedule.stages[i]
            settle = 0.5 if self.local else 1.5  # workers report once a second
            if not stage.until_slo_breach or i in self.steps or t < end + settle:
                continue
            w = self.tally.stages.get(i) or Window()
            stream = stream_numbers(w, end - start) if self.plan["target"].get("stream") else None
            verdict = evaluate(slo, w.requests, w.failures, w.dropped, end - start, w.latency_ms(), stream)
            self.steps[i] = verdict
            if not verdict["passed"] and self.breach is None:
                self.breach = i
                self.schedule.stop_after(min(i + 1, len(self.schedule.stages) - 1))

    def finish(self, interrupted: bool) -> None:
        if self.finished or self.started_at is None:
            return
        self.finished = True
        interrupted = interrupted or self.interrupted
        if self.end_elapsed is None:  # not ended by end_if_due: Locust is shutting down under us
            self.end_elapsed = max(0.0, min(self.elapsed(), self.schedule.end))
            try:
                self.runner.stop()  # let users finish and workers send their last batch
            except Exception:  # noqa: BLE001 - partial results are still worth writing
                pass
        if not self.local:
            self.wait_for_finals()
        self.drain()
        self._collect()
        self.sample = self.sample or self.local_sample()
        final = self.snapshot(interrupted)
        last = max(self.tally.recent, default=self.tally.settled_before or 0)
        self._write_rows(max(last + 1, self.tally.settled_before or 0))
        if self.rows is not None:
            self.rows.close(self.tally.corrected, self.tally.partly)
        self._write_summary(final, in_progress=False)  # (sme rewrites it; this one is for a dead sme)
        final["tally"] = self.tally.to_json()
        tmp = self.plan["final"] + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(final, fh)
        os.replace(tmp, self.plan["final"])
        self._out.write(json.dumps({"done": True}) + "\n")

    def snapshot(self, interrupted: bool) -> dict[str, Any]:
        """What results.summarize reads (with the live tally: summarize does not change it)."""
        ended = self.end_elapsed if self.end_elapsed is not None else max(0.0, self.elapsed())
        return {"started_at": self.started_at, "ended_at": time.time(), "elapsed": ended,
                "interrupted": interrupted, "schedule_end": self.schedule.end, "breach": self.breach,
                "sample": self.sample or self.local_sample(), "tally": self.tally, **self.extra()}

    def _write_summary(self, final: dict[str, Any], in_progress: bool) -> None:
        if not self.plan.get("out"):
            return
        from sme.loadtest.results import summarize

        pending = self._summary_write
        if pending is not None:
            if in_progress and not pending.ready():  # the last one is still being written: the next will do
                return
            self._summary_write = None
            self._say(pending.get())  # (the final summary must not be overtaken by an older one)
        stages = [Stage(**s) for s in self.plan["stages"]]
        open_model = stages[0].open
        summary = summarize(final, stages, self.plan.get("slo") or {}, open_model, self.plan["target"],
                            partial=in_progress or bool(final["interrupted"]), in_progress=in_progress)
        text = json.dumps(summary, indent=2) + "\n"  # (here: the thread gets text, nothing the loop changes)
        job = gevent.get_hub().threadpool.spawn(_write_or_say, Path(self.plan["out"]) / "summary.json", text)
        if in_progress:
            self._summary_write = job
        else:
            self._say(job.get())

    def _say(self, failure: OSError | None) -> None:
        """A full disk must not stop the run (the final summary is written by sme): a warning in the log."""
        if failure is not None:
            logging.getLogger("sme").warning("cannot write summary.json in %s: %s", self.plan["out"], failure)


def _write_or_say(path: Path, text: str) -> OSError | None:
    """Replace ``path`` atomically, on a native thread: system calls only (no logging, no tempfile: their
    locks are gevent's, which a native thread must not take); the loop says what went wrong. One write runs
    at a time (``Progress._write_summary``), so the temporary name needs only the process id."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = text.encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.fchmod(fd, 0o644)
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return exc
    return None
