"""A scale event fired while an update runs is applied after the update, not under it: the update's `sme deploy`
ends by registering the scalable target from its own file, which would undo the new floor (seen in CI: the
floor of 4 set at 32 s was put back to 3 by the update that ended at 36 s, and the run waited 3 minutes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sme.run.actions import Actions
from sme.run.config import Event


class Recording(Actions):
    def __init__(self) -> None:
        super().__init__(aws=None, endpoint="e", out=Path("."), twin_url=None, poll=0.01)
        self.applied_at: float | None = None

    def _set_scaling(self, low, high, stopped, waited):  # type: ignore[no-untyped-def]
        self.applied_at = time.monotonic()
        return {"outcome": "ok", "waited_s": waited, "min": low, "max": high}

    def _instances(self):  # type: ignore[no-untyped-def]
        return {"AllTraffic": 3}


SCALE = Event(2, 32.0, "scale", "events[1]", scale=(("min", 4),), scaling=(4, 4))


def test_a_scale_during_an_update_is_applied_once_the_update_ends():
    actions = Recording()
    actions.changing.acquire()  # the update's deploy is running
    released: list[float] = []

    def update_ends() -> None:
        time.sleep(0.3)
        released.append(time.monotonic())
        actions.changing.release()

    threading.Thread(target=update_ends).start()
    result = actions.fire(SCALE, lambda: False)
    assert result["outcome"] == "ok" and actions.applied_at is not None
    assert actions.applied_at >= released[0], "the floor is set after the update, never under it"
    assert result["waited_s"] >= 0.2


def test_a_scale_still_waiting_when_the_run_stops_is_recorded_as_stopped_without_changing_anything():
    actions = Recording()
    actions.changing.acquire()
    stop_at = time.monotonic() + 0.1
    result = actions.fire(SCALE, lambda: time.monotonic() > stop_at)
    assert result["outcome"] == "stopped" and actions.applied_at is None
    assert "waiting for the update" in result["summary"]


def test_a_scale_with_no_update_running_is_applied_at_once():
    actions = Recording()
    result = actions.fire(SCALE, lambda: False)
    assert result["outcome"] == "ok" and result["waited_s"] < 0.05
    assert not actions.changing.locked(), "the lock is given back"


def test_an_update_waiting_for_an_earlier_one_does_not_start_once_the_run_stops():
    actions = Recording()
    started: list[Event] = []
    actions._update = lambda event, stopped: started.append(event) or {"outcome": "ok"}  # type: ignore[method-assign]
    actions.changing.acquire()  # the earlier update
    stop_at = time.monotonic() + 0.1
    update = Event(3, 40.0, "deploy", "events[2]")
    result = actions.fire(update, lambda: time.monotonic() > stop_at)
    assert result["outcome"] == "stopped" and started == []
    actions.changing.release()
    assert actions.fire(update, lambda: False)["outcome"] == "ok" and started == [update]
