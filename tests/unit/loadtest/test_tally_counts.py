"""Every count the summary shows (requests, failures, dropped, errors), merged from two processes' batches,
for the whole run and per stage, and through the JSON a finished run is read back from: hand-counted."""

from __future__ import annotations

import json

from sme.loadtest.stats import Recorder, Tally, Window


def two_processes() -> Tally:
    a, b = Recorder(), Recorder()
    a.record(1000.5, 5.0, None)
    a.record(1000.7, 7.0, "status:503")
    a.drop(1001.2)
    b.record(1001.1, 9.0, None)
    b.record(1002.3, 11.0, "exception:ConnectionRefusedError")
    b.drop(1002.9)
    b.drop(1003.0)
    tally = Tally(lambda second: 0 if second < 1002 else 1)
    tally.add(json.loads(json.dumps(a.drain())))  # as a worker report travels
    tally.add(b.drain(wire=False))  # as the local runner hands it over
    return tally


def counts(w: Window) -> tuple[int, int, int]:
    return w.requests, w.failures, w.dropped


def test_requests_failures_dropped_and_errors_add_up_per_stage_and_in_the_whole():
    tally = two_processes()
    assert counts(tally.whole) == (4, 2, 3)
    assert counts(tally.stages[0]) == (3, 1, 1), "seconds 1000 and 1001"
    assert counts(tally.stages[1]) == (1, 1, 2), "seconds 1002 and 1003"
    assert tally.errors == {"status:503": 1, "exception:ConnectionRefusedError": 1}
    assert [(sec, counts(w)) for sec, w in tally.settle(1004)] == [
        (1000, (2, 1, 0)), (1001, (1, 0, 1)), (1002, (1, 1, 1)), (1003, (0, 0, 1))]


def test_the_json_of_a_run_keeps_every_count():
    tally = two_processes()
    back = Tally.from_json(json.loads(json.dumps(tally.to_json())))
    assert counts(back.whole) == (4, 2, 3)
    assert {i: counts(w) for i, w in back.stages.items()} == {0: (3, 1, 1), 1: (1, 1, 2)}
    assert back.errors == tally.errors
    assert back.whole.latency_ms() == tally.whole.latency_ms()


def test_merging_windows_adds_failures_and_dropped_too():
    w = Window()
    w.merge(two_processes().stages[0])
    w.merge(two_processes().stages[1])
    assert counts(w) == (4, 2, 3)
    assert Window.lasting().histogram().get_total_count() == 0
    assert Window().histogram().get_total_count() == 0 and Window().latency_ms()["mean"] is None


def test_a_late_batch_for_a_settled_second_is_counted_once_in_its_row():
    tally = Tally()
    early = Recorder()
    early.record(1000.5, 5.0, None)
    tally.add(early.drain())
    assert [counts(w) for _, w in tally.settle(1001)] == [(1, 0, 0)]
    late = Recorder()
    late.record(1000.9, 6.0, "status:500")
    late.drop(1000.1)
    tally.add(late.drain())
    assert counts(tally.corrected[1000]) == (2, 1, 1) and counts(tally.whole) == (2, 1, 1)
    assert tally.settle(1001) == [], "nothing new to hand out"
