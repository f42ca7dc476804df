"""Stages as a pure schedule: what the load should be at time t, and when open-model requests are due.

``Schedule.at(t)`` is Locust's ``LoadTestShape.tick`` without the clock (the child's shape class passes
its run time in), so it is tested without sleeping. ``ArrivalClock`` turns a piecewise-linear request
rate into exact due times: arrival k is due when the integral of the rate reaches k, and worker i of n
takes arrivals i, i+n, i+2n, ... so several processes interleave into one even stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

from sme.loadtest.config import Stage


@dataclass(frozen=True)
class Tick:
    stage: int
    users: int | None
    spawn_rate: float | None
    rate: float | None


class Schedule:
    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)
        self.bounds: list[tuple[float, float]] = []
        t = 0.0
        for s in self.stages:
            self.bounds.append((t, t + s.duration))
            t += s.duration
        self.end = t

    @property
    def open(self) -> bool:
        return self.stages[0].open

    def stop_after(self, stage: int) -> None:
        """End the run at the end of this stage (a ladder that broke its SLO)."""
        self.end = min(self.end, self.bounds[stage][1])

    def stage_at(self, t: float) -> int | None:
        if t < 0 or t >= self.end:
            return None
        for i, (start, end) in enumerate(self.bounds):
            if start <= t < end:
                return i
        return None

    def stage_of_second(self, k: float) -> int:
        """The one stage whose numbers count second [k, k + 1) of the run: the stage in effect at its middle
        (so each second counts in exactly one stage and the stages add up to the run); the first stage for a
        second before the start, the stage the run ended in for a second after its end (requests that
        were in flight when it ended)."""
        t = k + 0.5
        if t < 0:
            return 0
        i = self.stage_at(t)
        if i is not None:
            return i
        return max([j for j, (start, _) in enumerate(self.bounds) if start < self.end] or [0])

    def steady_seconds(self, stage: int) -> range:
        """The seconds of the run (k: second [k, k + 1) after the start) that measure this stage steady:
        those counted in it (see stage_of_second) up to the run's end, but its first and last, which
        straddle its neighbours (a ramp, users spawning, requests in flight); all of them for a stage of
        fewer than 4 seconds. Seconds after the run's end (requests in flight) are never steady."""
        start, end = self.bounds[stage]
        seconds = range(math.ceil(start - 0.5), math.ceil(min(end, self.end) - 0.5))
        return seconds[1:-1] if len(seconds) >= 4 else seconds

    def at(self, t: float) -> Tick | None:
        i = self.stage_at(t)
        if i is None:
            return None
        s = self.stages[i]
        if s.open:
            return Tick(i, None, None, self.rate_at(t))
        return Tick(i, s.users, s.spawn_rate, None)

    def rate_at(self, t: float) -> float:
        for a, b, r0, r1 in self.segments():
            if a <= t < b:
                return r0 + (r1 - r0) * (t - a) / (b - a)
        return 0.0

    def segments(self) -> list[tuple[float, float, float, float]]:
        """The rate as linear pieces (start, end, rate at start, rate at end)."""
        out = []
        prev = 0.0
        for s, (start, end) in zip(self.stages, self.bounds):
            rate = s.rate or 0.0
            if s.ramp > 0:
                out.append((start, start + s.ramp, prev, rate))
                start += s.ramp
            if end > start:
                out.append((start, end, rate, rate))
            prev = rate
        return out

    def peak_rate(self) -> float:
        return max((s.rate or 0.0) for s in self.stages)

    def peak_users(self) -> int:
        return max((s.users or 0) for s in self.stages)


class ArrivalClock:
    """Due times (seconds from the start) of one worker's share of an open-model schedule."""

    def __init__(self, schedule: Schedule, workers: int = 1, index: int = 0):
        self.segments = schedule.segments()
        self.workers = max(1, workers)
        self.index = index

    def __iter__(self) -> Iterator[float]:
        k = self.index
        seg, done = 0, 0.0  # arrivals counted up to the start of segment `seg`
        while seg < len(self.segments):
            a, b, r0, r1 = self.segments[seg]
            need = k - done
            tau = _solve(r0, (r1 - r0) / (b - a), need)
            if tau is not None and tau < b - a:
                yield a + tau
                k += self.workers
                continue
            done += (r0 + r1) / 2 * (b - a)
            seg += 1


def _solve(a: float, b: float, need: float) -> float | None:
    """Smallest tau >= 0 with a*tau + b*tau^2/2 == need (the integral of a rate a + b*tau).

    Arrival k is due when the integral reaches k, so arrival 0 is due at once, but only where the rate is
    (or is rising from) above zero: a segment at rate 0 sends nothing, not one request."""
    if need <= 0:
        return 0.0 if a > 0 or b > 0 else None
    if abs(b) < 1e-12:
        return need / a if a > 0 else None
    disc = a * a + 2 * b * need
    if disc < 0:
        return None
    return (-a + math.sqrt(disc)) / b
