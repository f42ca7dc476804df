"""A streaming ladder's numbers per stage (summary.json `stages[].stream`) and per second (timeseries.csv's
ttft/itl/token columns), from answers whose times and tokens are chosen here and whose results are worked out
by hand: every token counts in its stage and its second, also the seconds of a step the run did not reach."""

from __future__ import annotations

import json

from sme.loadtest.config import Stage
from sme.loadtest.results import summarize
from sme.loadtest.shapes import Schedule
from sme.loadtest.stats import Recorder, Tally
from sme.loadtest.timeseries import row

T0 = 1000
STEPS = [Stage(2, rate=10, kind="step"), Stage(2, rate=20, kind="step"), Stage(2, rate=30, kind="step")]


def ladder_stopped_after_its_second_step() -> Tally:
    """One streamed answer a second for 6 s: in second k, time to first token k+1 ms, one gap of (k+1)/2 ms
    and k+1 output tokens; half of them through a worker's report (JSON), half from the local runner."""
    schedule = Schedule(STEPS)
    tally = Tally(lambda sec: schedule.stage_of_second(sec - T0))
    tally.first_second = T0
    for k in range(6):
        rec = Recorder()
        rec.record_stream(T0 + k + 0.5, k + 1.0, [(k + 1) * 500], tokens=k + 1)
        rec.record(T0 + k + 0.5, 100.0, None)
        tally.add(json.loads(json.dumps(rec.drain())) if k % 2 else rec.drain(wire=False))
    return tally


def test_each_stage_counts_its_own_tokens_and_a_step_not_reached_folds_into_the_last_one():
    final = {"started_at": T0, "ended_at": T0 + 4, "elapsed": 4.0, "tally": ladder_stopped_after_its_second_step()}
    s = summarize(final, STEPS, {}, True, {"kind": "url", "name": "x", "stream": "sse"}, partial=False)
    first, second = (st["stream"] for st in s["stages"])
    # step 1: seconds 0-1, first tokens at 1 and 2 ms (each its own 1 us bucket): p50 the 1st of 2, max 2 ms
    assert (first["output_tokens"], first["requests_with_tokens"]) == (1 + 2, 2)
    assert (first["ttft_ms"]["p50"], first["ttft_ms"]["max"]) == (1.0, 2.0)
    assert first["output_tokens_per_s"] == 1.5  # 3 tokens over its 2 seconds
    # step 2: seconds 2-3 and, folded in (step 3 was not reached), 4-5: first tokens at 3, 4, 5, 6 ms;
    # 4,000 us is in [2048, 4096): 2 us buckets, read at their highest value (4.001 ms); 6,000 us in
    # [4096, 8192): 4 us buckets (6.003 ms). p50: the 2nd of 4
    assert (second["output_tokens"], second["requests_with_tokens"]) == (3 + 4 + 5 + 6, 4)
    assert (second["ttft_ms"]["p50"], second["ttft_ms"]["max"]) == (4.001, 6.003)
    # gaps 1.5, 2.0, 2.5, 3.0 ms: 1,500 and 2,000 us exact; 2,500 and 3,000 in 2 us buckets (read at +1 us)
    assert (second["itl_ms"]["p50"], second["itl_ms"]["max"]) == (2.0, 3.001)
    assert (s["stream"]["output_tokens"], s["stream"]["requests_with_tokens"]) == (21, 6)


def test_each_seconds_row_shows_that_seconds_tokens():
    tally = ladder_stopped_after_its_second_step()
    rows = {sec: row(sec, T0, w, [0, None, 10.0], stream=True) for sec, w in tally.settle(T0 + 6)}
    # ttft p50, p99, itl p50, p99, output tokens of each second (one answer each)
    assert [rows[T0 + k][-5:] for k in range(6)] == [
        [1.0, 1.0, 0.5, 0.5, 1], [2.0, 2.0, 1.0, 1.0, 2], [3.001, 3.001, 1.5, 1.5, 3],
        [4.001, 4.001, 2.0, 2.0, 4], [5.003, 5.003, 2.501, 2.501, 5], [6.003, 6.003, 3.001, 3.001, 6]]
