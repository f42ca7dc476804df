"""Events fire on the load's clock (injected: no test sleeps), are recorded in run.json, and never stop the run."""

from __future__ import annotations

import json

from sme.run.config import Event
from sme.run.events import EventRunner, RunLog, Schedule


def ev(number, at, kind="scale"):
    return Event(number, at, kind, f"events[{number - 1}]", scale=(("min", 2),), scaling=(2, 4))


class FakeTime:
    """A clock that moves only when the runner waits (or an event takes time)."""

    def __init__(self, start=1000.0):
        self.now = start
        self.waits: list[float] = []

    def clock(self):
        return self.now

    def wait(self, seconds):
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_schedule_gives_each_event_once_when_due_in_time_order():
    s = Schedule([ev(1, 30), ev(2, 10), ev(3, 10)])
    assert s.pop_due(5) is None and s.next_at() == 10
    assert [s.pop_due(12).number, s.pop_due(12).number] == [2, 3]
    assert s.pop_due(12) is None and s.next_at() == 30
    assert s.pop_due(100).number == 1 and s.next_at() is None


def test_runner_waits_for_the_load_to_start_then_fires_each_event_on_its_time(tmp_path):
    t = FakeTime()
    starts = iter([None, None, 1000.5])  # the load's first row appears on the third look
    fired: list[tuple[int, float]] = []

    def fire(event, stopped):
        fired.append((event.number, t.now - 1000.5))
        t.now += 3  # an event takes time; the next one is still due on the load's clock
        return {"outcome": "ok", "summary": "done"}

    log = RunLog(tmp_path / "run.json")
    runner = EventRunner((ev(1, 10), ev(2, 11.5), ev(3, 40)), fire, log, lambda: next(starts), lambda s: None,
                         clock=t.clock, wait=t.wait, concurrent=False)
    runner.run()
    assert [n for n, _ in fired] == [1, 2, 3]
    assert 10 <= fired[0][1] < 11 and 13 <= fired[1][1] < 14 and 40 <= fired[2][1] < 41, fired
    assert max(t.waits) <= 1.0, "waits in steps of at most a second, so stop() is seen quickly"
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["load_started_at"] == 1000.5
    assert [(e["number"], e["outcome"]) for e in saved["events"]] == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert saved["events"][1]["late_s"] >= 1.5, "the second event was held up by the first one"


def test_an_event_that_fails_is_recorded_and_the_next_one_still_fires(tmp_path):
    t = FakeTime()

    def fire(event, stopped):
        if event.number == 1:
            raise RuntimeError("the twin is gone")
        return {"outcome": "ok"}

    log = RunLog(tmp_path / "run.json")
    EventRunner((ev(1, 1), ev(2, 2)), fire, log, lambda: 1000.0, lambda s: None, clock=t.clock, wait=t.wait,
                concurrent=False).run()
    events = json.loads((tmp_path / "run.json").read_text())["events"]
    assert events[0]["outcome"] == "error" and "the twin is gone" in events[0]["error"]
    assert events[1]["outcome"] == "ok"


def test_stop_ends_the_runner_and_a_running_event_sees_it(tmp_path):
    seen = []

    def fire(event, stopped):
        runner.stop(timeout=0)
        seen.append(stopped())
        return {"outcome": "stopped"}

    runner = EventRunner((ev(1, 0), ev(2, 5)), fire, RunLog(None), lambda: 0.0, lambda s: None,
                         clock=lambda: 100.0, concurrent=False)
    runner.run()
    assert seen == [True], "the event was told the run is stopping"
    assert [e.number for e in runner.schedule.pending] == [2], "nothing fires after stop()"


def test_an_event_that_takes_long_does_not_hold_up_the_next_one(tmp_path):
    import threading

    t = FakeTime()
    release = threading.Event()
    fired: list[tuple[int, float]] = []

    def fire(event, stopped):
        fired.append((event.number, t.now - 1000.0))
        if event.number == 1:
            assert release.wait(10), "the zone failure never fired while the update ran"
        else:
            release.set()
        return {"outcome": "ok"}

    log = RunLog(tmp_path / "run.json")
    EventRunner((ev(1, 5), ev(2, 15)), fire, log, lambda: 1000.0, lambda s: None, clock=t.clock, wait=t.wait).run()
    assert [n for n, _ in fired] == [1, 2] and fired[1][1] < 16, f"the second event fired late: {fired}"
    events = json.loads((tmp_path / "run.json").read_text())["events"]
    assert [e["outcome"] for e in events] == ["ok", "ok"], "run() returns only when every event has ended"


def test_run_log_keeps_phases_and_replaces_an_events_running_record(tmp_path):
    log = RunLog(tmp_path / "run.json", {"experiment": "churn"})
    log.phase("deploy")
    log.phase("deploy", outcome="ok")
    log.event({"number": 1, "outcome": "running"})
    log.event({"number": 1, "outcome": "ok"})
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["phases"][0]["outcome"] == "ok" and saved["phases"][0]["ended"] >= saved["phases"][0]["started"]
    assert saved["events"] == [{"number": 1, "outcome": "ok"}]
