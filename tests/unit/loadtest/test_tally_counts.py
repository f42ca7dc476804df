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


def test_the_histogram_a_summary_carries_decodes_to_the_same_counts():
    from hdrh.histogram import HdrHistogram

    from sme.loadtest.hdr import encode

    tally = two_processes()
    for window in (tally.whole, tally.stages[0], tally.window(1000, 1002)):
        text = encode(window.histogram())
        assert isinstance(text, str), "it goes into summary.json as text"
        decoded = HdrHistogram.decode(text)
        assert decoded.get_total_count() == window.requests
        for p in (50, 99):
            assert decoded.get_value_at_percentile(p) / 1000.0 == window.percentiles_ms(p)[0]
    same_bucket = Window()
    same_bucket.add({5000: 3}, 3)
    assert same_bucket.histogram().get_total_count() == 3
    assert same_bucket.histogram().get_value_at_percentile(50) == 5003, "5.000-5.003 ms: one 4 us bucket"
    assert Window().percentiles_ms(50, 99) == [None, None], "no request, no percentile"


def test_the_live_window_merges_the_recent_seconds_it_spans():
    tally = two_processes()
    assert counts(tally.window(1000, 1002)) == (3, 1, 1)
    assert counts(tally.window(1001.5, 1003)) == (2, 1, 2), "from the start of the second 1001.5 falls in"
    assert counts(tally.window(1003, 1003)) == (0, 0, 0)


def test_error_keys_name_the_status_or_the_exception():
    from sme.loadtest.stats import error_key

    assert error_key(503, None) == "status:503"
    assert error_key(0, ConnectionRefusedError()) == "exception:ConnectionRefusedError"
    assert error_key(None, None) == "exception:Unknown"
    from geventhttpclient.useragent import RetriesExceeded

    late = RetriesExceeded("http://127.0.0.1:1/x", 1, original=TimeoutError("timed out"))
    assert error_key(0, late) == "exception:TimeoutError", "geventhttpclient's wrapper: the error it wraps"
    assert error_key(0, RetriesExceeded("http://127.0.0.1:1/x", "too many redirects")) == "exception:RetriesExceeded"
    assert error_key(200, TimeoutError("timed out")) == "stream:TimeoutError", "broke after its 200: not a status"
    assert error_key(200, ConnectionError("closed")) == "stream:ConnectionError"


def test_drops_in_one_second_add_up_and_partial_batches_are_accepted():
    rec = Recorder()
    rec.drop(1000.1)
    rec.drop(1000.8)
    tally = Tally()
    tally.add(rec.drain())
    tally.add({"seconds": {"1000": [[5000, 1], 1, 0]}})  # no errors, no drops: nothing else to add
    tally.add({"dropped": {"1001": 2}})
    assert counts(tally.whole) == (1, 0, 4) and list(tally.stages) == [0]
    back = Tally.from_json({"whole": tally.whole.to_json()})
    assert counts(back.whole) == (1, 0, 4) and back.stages == {} and back.errors == {}


def test_settling_hands_each_second_out_once_and_keeps_the_last_ones_for_late_batches():
    from sme.loadtest.stats import RETAIN_S

    assert Tally().settle(1005) == [], "nothing recorded yet: no rows"
    tally = Tally()
    rec = Recorder()
    rec.record(1000.5, 5.0, None)
    tally.add(rec.drain())
    assert [s for s, _ in tally.settle(1001)] == [1000]
    rec.record(1001.5, 5.0, None)  # the second being settled next, not a settled one
    tally.add(rec.drain())
    assert 1001 not in tally.corrected and [(s, counts(w)) for s, w in tally.settle(1002)] == [(1001, (1, 0, 0))]
    tally.settle(1000 + RETAIN_S)  # second 1000 is the oldest one still kept whole
    rec.record(1000.7, 6.0, None)
    tally.add(rec.drain())
    assert counts(tally.corrected[1000]) == (2, 0, 0) and 1000 not in tally.partly, "its row, whole again"
    tally.settle(1000 + RETAIN_S + 5)  # gone from the recent seconds, but its corrected row is kept: later
    # batches add to that row (still whole), not to a new partial one
    for _ in range(2):
        rec.record(1000.9, 7.0, None)
        tally.add(rec.drain())
    assert 1000 not in tally.partly and counts(tally.corrected[1000]) == (4, 0, 0)
