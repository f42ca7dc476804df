"""A streamed answer's time to first token and inter-token gaps land in the HDR bucket worked out here by hand,
counted once each, in the second the request completed in the master's clock: the counts behind summary.json's
`stream:` percentiles, timeseries.csv's ttft/itl columns and the async parts' percentiles.

The buckets (hdrh, 1 us to 1 h, 3 significant digits): below 2,048 us every microsecond is its own bucket;
from 2^k us (k >= 11) a bucket is 2^(k-10) us wide, and a value counts at its bucket's lowest value.
"""

from __future__ import annotations

from sme.loadtest import hdr
from sme.loadtest.stats import Recorder, Window

# ms as a load process measures them -> the bucket each lands in (us), worked out by hand:
#   0.0 ms     -> 0 us, below the lowest discernible value: counted at 1 us
#   1.0004 ms  -> 1000.4 us, rounded to the nearest us: 1000 (width 1)
#   1.0006 ms  -> 1000.6 us -> 1001
#   90 ms      -> 90,000 us in [2^16, 2^17): 64 us wide; 90,000 // 64 * 64 = 89,984
#   150 ms     -> 150,000 us in [2^17, 2^18): 128 us wide; 150,000 // 128 * 128 = 149,888
#   2 h        -> above the highest trackable value, counted at 3,600,000,000 us, in [2^31, 2^32): 2^21 us wide;
#                 3,600,000,000 // 2,097,152 * 2,097,152 = 3,598,712,832
TWO_HOURS_MS = 7_200_000.0
TWO_HOURS_US = 7_200_000_000
TOP_BUCKET = 3_598_712_832


def test_a_latency_is_counted_once_in_the_bucket_worked_out_by_hand():
    counts: hdr.Counts = {}
    for ms in (0.0, 1.0004, 1.0004, 1.0006, 150.0, TWO_HOURS_MS):
        hdr.count_into(counts, ms)
    assert counts == {1: 1, 1000: 2, 1001: 1, 149_888: 1, TOP_BUCKET: 1}


def test_each_inter_token_gap_is_counted_once_in_its_bucket_and_the_answer_in_its_second():
    rec = Recorder()
    rec.offset = 2.0  # this worker's clock is 2 s ahead of the master's: its seconds are moved back
    # as locustfile does: the stream's numbers first (inside the request), then the request itself
    # gaps in whole us, as a load process hands them over: 0 counts in the lowest bucket (with 1), two hours in
    # the top; 90,000 and 90,010 us share the 64 us bucket from 89,984
    rec.record_stream(1003.25, 1.0004, [0, 1, 1000, 1000, 1001, 90_000, 90_010, TWO_HOURS_US], tokens=7)
    rec.record(1003.25, 95.0, None)
    rec.record_stream(1003.75, 1.0004, [], tokens=1)
    rec.record(1003.75, 96.0, None)
    drained = rec.drain(wire=False)
    # requests: 95 ms -> 95,000 us in [2^16, 2^17): 95,000 // 64 * 64 = 94,976; 96 ms -> 96,000 exactly
    assert drained["seconds"] == {"1001": [{94_976: 1, 96_000: 1}, 2, 0, [
        {1000: 2}, {1: 2, 1000: 2, 1001: 1, 89_984: 2, TOP_BUCKET: 1}, 8, 2]]}


def test_an_answer_with_no_token_counts_its_tokens_but_no_time_to_first_token():
    rec = Recorder()
    rec.record_stream(50.5, None, [], tokens=0)
    rec.record(50.5, 3.0, "stream:ModelStreamError")
    assert rec.drain(wire=True)["seconds"] == {"50": [[3000, 1], 1, 1, [[], [], 0, 0]]}


def test_a_count_added_to_a_run_long_histogram_reads_back_as_that_count():
    w = Window.lasting()
    w.add({1000: 3, 89_984: 2}, 5)
    assert w.pairs() == [(1000, 3), (89_984, 2)]
    assert (w.dense.get_total_count(), w.dense.get_min_value(), w.dense.get_max_value()) == (5, 1000, 90_047)


def test_a_stages_token_counts_live_in_fixed_size_histograms_and_a_seconds_in_small_tables():
    """A 24-hour streaming run adds its gaps to the run's and each stage's counts all along: those are hdrh
    histograms (a fixed ~190 kB however many buckets fill); a second's few are plain dicts."""
    part = [{1000: 1}, {2000: 2}, 3, 1]
    lasting, second = Window.lasting(), Window()
    lasting.add({5000: 1}, 1, 0, 0, part)
    second.add({5000: 1}, 1, 0, 0, part)
    assert lasting.stream.ttft.dense is not None and lasting.stream.itl.dense is not None
    assert second.stream.ttft.dense is None and second.stream.itl.dense is None
    assert (lasting.stream.itl.pairs(), second.stream.itl.pairs()) == ([(2000, 2)], [(2000, 2)])
