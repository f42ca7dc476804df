"""Per-second statistics kept compact and merged as they arrive give the same answers as a full HDR
histogram per second (what sme kept before: ~190 kB a second), count for count; stages add up to the run.
"""

from __future__ import annotations

import csv
import json
import random

import pytest

from sme.loadtest.config import Stage
from sme.loadtest.results import summarize
from sme.loadtest.shapes import Schedule
from sme.loadtest.hdr import HIGHEST_US, new_histogram, percentiles_us
from sme.loadtest.stats import RETAIN_S, Recorder, Tally, Window
from sme.loadtest.timeseries import CSV_HEADER, TimeseriesFile, row

T0 = 1_790_000_000  # runs start on a whole second


def _us(ms: float) -> int:
    return min(max(int(ms * 1000.0 + 0.5), 1), HIGHEST_US)


def _latency(rng: random.Random) -> float:
    return rng.choice([rng.uniform(0.2, 40), 10 ** rng.uniform(-3, 6.5), rng.expovariate(1 / 5)])


def _recorded(seconds: int, per_second: int, seed: int = 3) -> list[tuple[float, float, str | None]]:
    """(completion time, latency ms, error) as three load processes would record them."""
    rng = random.Random(seed)
    out = []
    for k in range(seconds):
        for _ in range(rng.randint(0, per_second)):
            out.append((T0 + k + rng.random(), _latency(rng), "status:503" if rng.random() < 0.02 else None))
    return out


def _reference(recorded):  # type: ignore[no-untyped-def]
    """Today's way, the truth to compare with: one full hdrh histogram per second."""
    per_second: dict[int, object] = {}
    for done_at, ms, _ in recorded:
        per_second.setdefault(int(done_at), new_histogram()).record_value(_us(ms))
    return per_second


def _merge(hists):  # type: ignore[no-untyped-def]
    total = new_histogram()
    for h in hists:
        total.add(h)
    return total


def _hdr_latency(h) -> dict:  # type: ignore[no-untyped-def]
    out = {k: h.get_value_at_percentile(p) / 1000.0 for k, p in
           {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}.items()}
    out["max"] = h.get_max_value() / 1000.0
    out["mean"] = round(h.get_mean_value() / 1000.0, 3)
    return out


STAGES = [Stage(30, users=5, kind="users"), Stage(0.01, users=50, kind="users"),
          Stage(45.49, users=10, kind="users"), Stage(44.5, users=20, kind="users")]


def _feed(recorded, schedule: Schedule, processes: int = 3):  # type: ignore[no-untyped-def]
    """Record in several processes, send their batches in a shuffled order as worker reports do (flat,
    through JSON), settle seconds as the master does once a second; return the tally and its rows."""
    rng = random.Random(11)
    recorders = [Recorder() for _ in range(processes)]
    tally = Tally(lambda sec: schedule.stage_of_second(sec - T0),
                  lambda sec, stage: sec - T0 in schedule.steady_seconds(stage))
    tally.first_second = T0
    rows: dict[int, Window] = {}
    by_second: dict[int, list] = {}
    for item in recorded:
        by_second.setdefault(int(item[0]), []).append(item)
    last = max(by_second)
    for sec in range(T0, last + 3):
        batches = []
        for done_at, ms, err in by_second.get(sec, []):
            recorders[rng.randrange(processes)].record(done_at, ms, err)
        for rec in recorders:
            if rng.random() < 0.7 or sec > last:  # a process that reports late: its batch holds 2+ seconds
                batches.append(json.loads(json.dumps(rec.drain())))
        rng.shuffle(batches)
        for b in batches:
            tally.add(b)
        rows.update(tally.settle(sec - 2))
    rows.update(tally.settle(last + 1))
    return tally, rows


def test_per_second_stage_and_whole_numbers_equal_full_histograms_count_for_count():
    recorded = _recorded(120, 40)
    schedule = Schedule(STAGES)
    tally, rows = _feed(recorded, schedule)
    truth = _reference(recorded)
    assert tally.corrected, "some batch came after its second's row was written (a late worker report)"
    assert tally.requests == len(recorded)
    assert tally.whole.latency_ms() == _hdr_latency(_merge(truth.values()))
    assert list(tally.whole.histogram().counts) == list(_merge(truth.values()).counts)
    for sec, w in rows.items():
        if sec in truth:
            h = truth[sec]
            late = tally.corrected.get(sec)
            w = late or w
            assert w.requests == h.get_total_count(), sec
            assert w.percentiles_ms(50.0, 99.0) == [h.get_value_at_percentile(50) / 1000.0,
                                                    h.get_value_at_percentile(99) / 1000.0], sec
        else:
            assert w.requests == 0
    for i in range(len(STAGES)):
        mine = [s for s in truth if schedule.stage_of_second(s - T0) == i]
        stage = tally.stages.get(i) or Window()
        assert stage.requests == sum(truth[s].get_total_count() for s in mine)
        if mine:
            assert stage.latency_ms() == _hdr_latency(_merge(truth[s] for s in mine)), f"stage {i}"


def test_each_stages_steady_histogram_is_hdrhs_of_its_seconds_but_the_first_and_last():
    recorded = _recorded(95, 40, seed=8)  # the run ends 25 s into the last stage; batches come late
    schedule = Schedule(STAGES)
    schedule.end = 95.0
    tally, _ = _feed(recorded, schedule)
    truth = _reference(recorded)
    for i in range(len(STAGES)):
        # the stage's seconds, worked out here from where each second's middle falls: 0-29, none, 30-74, 75-94
        seconds = [T0 + k for k in range(95) if schedule.stage_of_second(k) == i]
        steady = seconds[1:-1] if len(seconds) >= 4 else seconds
        w = tally.steady(i)
        assert w.requests == sum(truth[s].get_total_count() for s in steady if s in truth), f"stage {i}"
        assert w.failures == sum(1 for d, _, e in recorded if int(d) in steady and e), f"stage {i}"
        if steady:
            assert w.latency_ms() == _hdr_latency(_merge(truth[s] for s in steady if s in truth)), f"stage {i}"
    assert [len(schedule.steady_seconds(i)) for i in range(4)] == [28, 0, 43, 18]
    after = [d for d, _, _ in recorded if d >= T0 + 95]
    assert tally.steady(3).requests < tally.stages[3].requests - len(after), "in-flight seconds are not steady"


def test_steady_numbers_survive_the_trip_from_the_load_process_to_sme():
    schedule = Schedule(STAGES)
    tally, _ = _feed(_recorded(120, 30, seed=4), schedule)
    back = Tally.from_json(json.loads(json.dumps(tally.to_json())))
    assert set(back.edges) == {0, 2, 3} and all(w.dense is None for w in back.edges.values()), "edges stay small"
    for i in range(len(STAGES)):
        mine, theirs = tally.steady(i), back.steady(i)
        assert (theirs.requests, theirs.failures, theirs.dropped, theirs.pairs()) == \
            (mine.requests, mine.failures, mine.dropped, mine.pairs()), f"stage {i}"
    assert Tally().steady(5) == Window(), "a stage with nothing recorded"


def test_steady_seconds_leave_out_a_stages_first_and_last_and_keep_short_stages_whole():
    sched = Schedule([Stage(10, rate=5), Stage(3, rate=6), Stage(0.4, rate=7), Stage(5.5, rate=8)])
    assert list(sched.steady_seconds(0)) == list(range(1, 9))  # seconds 0-9: not 0, not 9
    assert list(sched.steady_seconds(1)) == [10, 11, 12], "3 seconds: too short to leave any out"
    assert list(sched.steady_seconds(2)) == [], "middle at 13.5 is past 13.4: the second counts in stage 3"
    assert list(sched.steady_seconds(3)) == [14, 15, 16, 17], "seconds 13-18 (18.5 is before the end at 18.9)"
    sched.stop_after(1)
    assert list(sched.steady_seconds(3)) == [] and list(sched.steady_seconds(1)) == [10, 11, 12]


def test_percentiles_read_from_counts_are_hdrhs():
    rng = random.Random(5)
    for size in (1, 2, 3, 10, 1000, 20_000):
        h, w = new_histogram(), Recorder()
        for _ in range(size):
            ms = _latency(rng)
            h.record_value(_us(ms))
            w.record(T0, ms, None)
        counts = w.seconds[T0][0]
        wanted = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        assert percentiles_us(sorted(counts.items()), wanted) == h.get_percentile_to_value_dict(wanted), size
        assert Window(counts=counts).latency_ms() == _hdr_latency(h)


def test_stage_requests_add_up_to_the_total_and_a_10ms_stage_claims_no_rate():
    recorded = _recorded(120, 40)
    tally, _ = _feed(recorded, Schedule(STAGES))
    final = {"started_at": T0, "ended_at": T0 + 121, "elapsed": 120.0, "tally": json.loads(json.dumps(tally.to_json()))}
    s = summarize(final, STAGES, {}, False, {"kind": "url", "name": "x"}, partial=False)
    assert sum(st["requests"] for st in s["stages"]) == s["requests"] == len(recorded)
    tiny = s["stages"][1]
    assert tiny["end_s"] - tiny["start_s"] == pytest.approx(0.01)
    assert tiny["requests"] == 0 and tiny["rps"] is None, "a 10 ms stage measured no whole second itself"
    assert s["stages"][0]["requests"] == sum(1 for t, _, _ in recorded if t < T0 + 30)
    assert s["in_progress"] is False


def test_a_ladder_cut_short_folds_its_last_seconds_into_the_last_stage_reached():
    stages = [Stage(2, rate=10, kind="step"), Stage(2, rate=20, kind="step"), Stage(2, rate=30, kind="step")]
    tally = Tally(lambda sec: Schedule(stages).stage_of_second(sec - T0))
    rec = Recorder()
    for k in range(6):
        rec.record(T0 + k + 0.5, 1.0, None)
    tally.add(rec.drain())
    final = {"started_at": T0, "ended_at": T0 + 4, "elapsed": 4.0, "tally": tally}  # stopped after step 2
    s = summarize(final, stages, {}, True, {"kind": "url", "name": "x"}, partial=False)
    assert [st["requests"] for st in s["stages"]] == [2, 4]


def test_seconds_map_to_exactly_one_stage():
    sched = Schedule([Stage(10, users=1), Stage(0.01, users=2), Stage(5.5, users=3)])
    assert [sched.stage_of_second(k) for k in (-3, 0, 9, 10, 11, 14, 15, 16, 400)] == [0, 0, 0, 2, 2, 2, 2, 2, 2]
    sched.stop_after(0)
    assert sched.stage_of_second(12) == 0, "after the end: the stage the run ended in"


def test_memory_stays_flat_a_settled_second_keeps_nothing_after_RETAIN_S():
    tally = Tally()
    rec = Recorder()
    for k in range(3600):
        for j in range(5):
            rec.record(T0 + k + j / 5, 1.0 + j, None)
        tally.add(rec.drain())
        tally.settle(T0 + k)
    assert len(tally.recent) <= RETAIN_S + 1
    assert tally.requests == 18_000 and len(tally.stages) == 1 and len(tally.whole.pairs()) == 5


def test_a_late_batch_is_counted_in_its_row_at_the_end(tmp_path):
    tally = Tally()
    tally.first_second = T0
    path = tmp_path / "timeseries.csv"
    out = TimeseriesFile(path)
    early, late, very_late = Recorder(), Recorder(), Recorder()
    for k in range(40):
        early.record(T0 + k + 0.1, 2.0, None)
    late.record(T0 + 30.5, 900.0, None)  # comes 5 s after its row was written: exact row again
    very_late.record(T0 + 3.5, 5.0, "status:500")  # comes 30 s late: its counts are added
    tally.add(early.drain())
    out.append([row(s, T0, w, [0, 1, None]) for s, w in tally.settle(T0 + 35)])
    tally.add(late.drain())
    tally.add(very_late.drain())
    out.append([row(s, T0, w, [0, 1, None]) for s, w in tally.settle(T0 + 40)])
    out.close(tally.corrected, tally.partly)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CSV_HEADER
    assert sum(int(r["requests"]) for r in rows) == tally.requests == 42
    by = {int(r["time"]) - T0: r for r in rows}
    h = new_histogram()
    h.record_value(2000)
    h.record_value(900_000)
    assert (by[30]["requests"], by[30]["p99_ms"]) == ("2", str(h.get_value_at_percentile(99) / 1000.0)), by[30]
    assert (by[3]["requests"], by[3]["failures"], by[3]["p50_ms"]) == ("2", "1", "2.0")


def test_without_a_schedule_every_second_is_steady_and_an_edge_seconds_drops_stay_out_of_the_steady_numbers():
    plain = Tally()
    rec = Recorder()
    rec.record(T0 + 0.5, 1.0, None)
    rec.drop(T0 + 0.5)
    plain.add(rec.drain())
    assert (plain.steady(0).requests, plain.steady(0).dropped, plain.edges) == (1, 1, {})
    schedule = Schedule([Stage(5, rate=1, kind="rate")])  # steady seconds 1-3
    ladder = Tally(lambda sec: 0, lambda sec, stage: sec - T0 in schedule.steady_seconds(stage))
    for k in range(5):
        rec.record(T0 + k + 0.5, 1.0, None)
    for k in (0, 2, 4, 4):
        rec.drop(T0 + k + 0.5)
    ladder.add(rec.drain())
    assert (ladder.steady(0).requests, ladder.steady(0).dropped, ladder.stages[0].dropped) == (3, 1, 4)
