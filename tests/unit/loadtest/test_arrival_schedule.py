"""The open model's arrival schedule and the stages' ticks, against due times worked out by hand.

Stages: 10 req/s for 2 s; a ramp from 10 to 30 req/s over 2 s, then 2 s at 30; a ramp down to 10 over 2 s.
Arrival k is due when the integral of the rate reaches k:
- [0, 2): rate 10, k = 0..19 at k / 10;
- [2, 4): rate 10 + 10 tau, integral 10 tau + 5 tau^2 = j: tau = (-10 + sqrt(100 + 20 j)) / 10, j = 0..39;
- [4, 6): rate 30, k = 60 + m at 4 + m / 30, m = 0..59;
- [6, 8): rate 30 - 10 tau, integral 30 tau - 5 tau^2 = j: tau = (30 - sqrt(900 - 20 j)) / 10, j = 0..39.
160 arrivals in all (20 + 40 + 60 + 40).
"""

from __future__ import annotations

import math

import pytest

from sme.loadtest.config import Stage
from sme.loadtest.shapes import ArrivalClock, Schedule, Tick

STAGES = [Stage(2, rate=10, kind="rate"), Stage(4, rate=30, ramp=2, kind="rate"), Stage(2, rate=10, ramp=2, kind="rate")]


def by_hand() -> list[float]:
    due = [k / 10 for k in range(20)]
    due += [2 + (-10 + math.sqrt(100 + 20 * j)) / 10 for j in range(40)]
    due += [4 + m / 30 for m in range(60)]
    due += [6 + (30 - math.sqrt(900 - 20 * j)) / 10 for j in range(40)]
    return due


def test_due_times_follow_the_integral_of_the_rate_through_ramps_up_and_down():
    got = list(ArrivalClock(Schedule(STAGES)))
    assert got == pytest.approx(by_hand(), abs=1e-9)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_workers_take_every_nth_arrival_and_together_make_the_one_stream(workers):
    schedule = Schedule(STAGES)
    whole = by_hand()
    for i in range(workers):
        assert list(ArrivalClock(schedule, workers, i)) == pytest.approx(whole[i::workers], abs=1e-9)


def test_the_rate_at_a_time_is_the_stage_or_the_point_on_its_ramp():
    schedule = Schedule(STAGES)
    assert [schedule.rate_at(t) for t in (0.0, 1.99, 2.0, 3.0, 3.5, 4.0, 5.9, 6.0, 7.0, 7.5, 8.0, 9.0)] == \
        pytest.approx([10, 10, 10, 20, 25, 30, 30, 30, 20, 15, 0, 0])
    assert schedule.segments() == [(0.0, 2.0, 10, 10), (2.0, 4.0, 10, 30), (4.0, 6.0, 30, 30), (6.0, 8.0, 30, 10)]
    assert (schedule.peak_rate(), schedule.peak_users()) == (30, 0)


def test_a_tick_names_the_stage_and_its_load():
    schedule = Schedule(STAGES)
    assert schedule.at(3.0) == Tick(1, None, None, 20.0)
    assert schedule.at(0.0) == Tick(0, None, None, 10.0)
    assert schedule.at(8.0) is None and schedule.at(-0.1) is None
    closed = Schedule([Stage(5, users=4, spawn_rate=2.5), Stage(5, users=9, spawn_rate=1)])
    assert closed.at(4.99) == Tick(0, 4, 2.5, None) and closed.at(5.0) == Tick(1, 9, 1, None)
    assert (closed.peak_rate(), closed.peak_users()) == (0.0, 9)


def test_a_first_stage_that_ramps_starts_from_zero():
    schedule = Schedule([Stage(4, rate=20, ramp=2, kind="rate")])
    # rate 10 tau, integral 5 tau^2 = k: tau = sqrt(k / 5); 20 arrivals in the ramp, then 20/s for 2 s
    want = [math.sqrt(k / 5) for k in range(20)] + [2 + m / 20 for m in range(40)]
    assert list(ArrivalClock(schedule)) == pytest.approx(want, abs=1e-9)


def test_slow_rates_short_ramps_and_gentle_slopes_are_kept_exactly():
    # 0.5 req/s: one arrival every 2 s
    assert list(ArrivalClock(Schedule([Stage(7, rate=0.5, kind="rate")]))) == pytest.approx([0.0, 2.0, 4.0, 6.0])
    # a 0.5 s ramp from 0 to 40 req/s (rate 80 tau, integral 40 tau^2 = k: 10 arrivals), then 40/s for 0.5 s
    want = [math.sqrt(k / 40) for k in range(10)] + [0.5 + m / 40 for m in range(20)]
    assert list(ArrivalClock(Schedule([Stage(1, rate=40, ramp=0.5, kind="rate")]))) == pytest.approx(want, abs=1e-9)
    # 10 -> 11 req/s over 2 s (slope 0.5 req/s^2): integral 10 tau + tau^2 / 4 = j
    ramp = Schedule([Stage(1, rate=10, kind="rate"), Stage(2, rate=11, ramp=2, kind="rate")])
    want = [k / 10 for k in range(10)] + [1 + 2 * (-10 + math.sqrt(100 + j)) for j in range(21)]
    assert list(ArrivalClock(ramp)) == pytest.approx(want, abs=1e-9)


def test_each_second_counts_in_one_stage_even_around_short_stages_and_an_early_stop():
    short_first = Schedule([Stage(0.2, users=1), Stage(5, users=2)])
    assert [short_first.stage_of_second(k) for k in (-3, 0, 1, 4)] == [0, 1, 1, 1], "second 0's middle is in stage 1"
    ladder = Schedule([Stage(2, rate=10, kind="step"), Stage(2, rate=20, kind="step"), Stage(2, rate=30, kind="step")])
    ladder.stop_after(0)
    assert ladder.end == 2
    assert [ladder.stage_of_second(k) for k in (0, 1, 2, 3, 9)] == [0, 0, 0, 0, 0], \
        "requests that end after an early stop count in the last stage run, not in one never reached"


def test_a_pause_at_rate_zero_sends_nothing_and_the_next_stage_resumes_on_time():
    schedule = Schedule([Stage(1, rate=10, kind="rate"), Stage(2, rate=0, kind="rate"), Stage(1, rate=10, kind="rate")])
    # arrival 10 is due when the integral reaches 10, which it does for the whole pause: a zero-rate stretch sends
    # nothing, so it waits for the rate to come back (each 1 s stage at 10/s gets exactly its 10 requests)
    want = [k / 10 for k in range(10)] + [3 + k / 10 for k in range(10)]
    assert list(ArrivalClock(schedule)) == pytest.approx(want, abs=1e-9)


def test_a_ramp_down_to_zero_keeps_its_last_arrival():
    # 10 -> 0 req/s over 2.02 s (slope -10 / 2.02): integral 10 tau - (10 / 2.02) tau^2 / 2 = j, 10.1 in all,
    # so arrival j = 10 is due near the ramp's end, where the root's discriminant is below 1
    slope = -10 / 2.02
    want = [k / 10 for k in range(10)] + [1 + (-10 + math.sqrt(100 + 2 * slope * j)) / slope for j in range(11)]
    got = list(ArrivalClock(Schedule([Stage(1, rate=10, kind="rate"), Stage(2.02, rate=0, ramp=2.02, kind="rate")])))
    assert got == pytest.approx(want, abs=1e-9)


def test_a_pause_after_a_fractional_integral_resumes_where_the_integral_left_off():
    # 10/s for 1.05 s is 10.5 arrivals: arrivals 0-10, then arrival 11 is due 0.05 s after the pause ends
    schedule = Schedule([Stage(1.05, rate=10, kind="rate"), Stage(2, rate=0, kind="rate"), Stage(1, rate=10, kind="rate")])
    want = [k / 10 for k in range(11)] + [3.1 + j / 10 for j in range(10)]
    assert list(ArrivalClock(schedule)) == pytest.approx(want, abs=1e-9)


def test_a_gentle_first_ramp_sends_its_first_arrival_at_once():
    # 0 -> 10 req/s over 20 s: the integral is t^2 / 4, so arrival k is due at 2 sqrt(k)
    got = list(ArrivalClock(Schedule([Stage(20, rate=10, ramp=20, kind="rate")])))
    assert got == pytest.approx([2 * math.sqrt(k) for k in range(100)], abs=1e-9)
