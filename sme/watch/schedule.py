"""The sampling schedule: drift-free slots, and missed slots recorded as such.

Slot k is due at ``start + k * interval`` (wall time, as written in the file; the waiting itself runs on
the monotonic clock). A slow sample does not shift the ones after it: the next slot is still due at its
own time. A slot whose whole interval has passed before it could start (the machine slept, a sample
overran, the watcher was dead until ``--resume``) is written as missed. A watch of duration D writes
slots 0 .. floor(D / interval): one at the start and one at the end of every interval in D.

The clock and sleep are injected (``Env``), so tests run a day of slots in no time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

# the sleep is cut into steps of at most this long so that a live display can count down
TICK = 1.0


@dataclass(frozen=True)
class Schedule:
    start: float  # wall time at which slot 0 is due
    interval: float
    last_slot: int | None = None  # None: until interrupted

    def due(self, slot: int) -> float:
        return self.start + slot * self.interval

    @staticmethod
    def last_slot_for(duration: float | None, interval: float) -> int | None:
        if duration is None:
            return None
        return int(math.floor(duration / interval + 1e-9))


def missed_record(slot: int, due: float, now: float, interval: float) -> dict[str, Any]:
    return {"slot": slot, "due": due, "time": now, "missed": True, "interval": interval}


@dataclass
class Scheduler:
    schedule: Schedule
    clock: Callable[[], float]  # monotonic
    wall: Callable[[], float]
    sleep: Callable[[float], None]
    on_wait: Callable[[int, float], None] | None = None  # (next slot, seconds until due)

    def run(self, first_slot: int, take: Callable[[int, float, float], dict[str, Any]],
            emit: Callable[[dict[str, Any]], None], once: bool = False) -> int:
        """Take (or mark missed) every slot from ``first_slot`` to the last; returns slots emitted.

        ``take(slot, due_wall, deadline_monotonic)`` returns the sample; ``emit`` writes it.
        """
        interval = self.schedule.interval
        mono0 = self._monotonic_at(self.schedule.start)  # monotonic time of slot 0
        slot, emitted = first_slot, 0
        while self.schedule.last_slot is None or slot <= self.schedule.last_slot:
            due_mono = mono0 + slot * interval
            now = self.clock()
            if now >= due_mono + interval and not once:
                emit(missed_record(slot, self.schedule.due(slot), self.wall(), interval))
                slot, emitted = slot + 1, emitted + 1
                continue
            self._wait_until(due_mono, slot)
            emit(take(slot, self.schedule.due(slot), due_mono + interval))
            slot, emitted = slot + 1, emitted + 1
            if once:
                break
        return emitted

    def _monotonic_at(self, wall_time: float) -> float:
        """The monotonic time of a wall-clock moment, from the tightest of three (wall, monotonic, wall) readings:
        a process descheduled between two readings would otherwise shift every slot early. (In a CI run a slot was
        written as missed 1.2 s after it was due with 2 s slots, which a 0.8 s gap between the two single readings
        this replaced would explain; it did not reproduce alone or under a CPU hog.)"""
        best: tuple[float, float] | None = None
        for _ in range(3):
            before, mono, after = self.wall(), self.clock(), self.wall()
            if best is None or after - before < best[0]:
                best = (after - before, mono - ((before + after) / 2 - wall_time))
        return best[1]

    def _wait_until(self, due_mono: float, slot: int) -> None:
        while True:
            left = due_mono - self.clock()
            if left <= 0:
                return
            if self.on_wait:
                self.on_wait(slot, left)
            self.sleep(min(TICK, left))
