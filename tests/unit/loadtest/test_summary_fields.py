"""summary.json field by field, and the SLO table drawn from it, for a run whose every request is chosen here.

The run: 2 stages of 4 s, open model, started at T0. Per second (of completion): 0: 4 requests of 1 ms;
1: 4 of 1.5 ms, one a 503; 2: 4 of 2 ms; 3: 4 of 1 ms, one a ConnectionError; 4-7: 2 of 1.8 ms each, and
3 arrivals dropped in second 5. Latencies under 2.048 ms are exact in HDR (3 digits), so every
percentile below is a latency of the list.
"""

from __future__ import annotations

import io
import json

from rich.console import Console

from sme.loadtest.config import Stage
from sme.loadtest.results import render_slo, summarize, write
from sme.loadtest.stats import Recorder, Tally, Window, new_histogram
from sme.loadtest.shapes import Schedule

T0 = 1_790_000_000
STAGES = [Stage(4, rate=4, kind="step", until_slo_breach=True), Stage(4, rate=2, kind="step", until_slo_breach=True)]
SECONDS = [[1.0] * 4, [1.5] * 4, [2.0] * 4, [1.0] * 4] + [[1.8] * 2] * 4
ERRORS = {(1, 0): "status:503", (3, 3): "exception:ConnectionError"}
SLO = {"p99_ms": 1.9, "error_rate": 0.1, "dropped_rate": 0.2}


def tally(stages: list[Stage] = STAGES) -> Tally:
    schedule = Schedule(stages)
    t = Tally(lambda sec: schedule.stage_of_second(sec - T0),
              lambda sec, stage: sec - T0 in schedule.steady_seconds(stage))
    rec = Recorder()
    for k, latencies in enumerate(SECONDS):
        for j, ms in enumerate(latencies):
            rec.record(T0 + k + 0.1 + j / 10, ms, ERRORS.get((k, j)))
    for _ in range(3):
        rec.drop(T0 + 5.5)
    t.add(json.loads(json.dumps(rec.drain())))  # as a worker's report travels
    return t


def summary(**kw):  # type: ignore[no-untyped-def]
    final = {"started_at": float(T0), "ended_at": T0 + 8.25, "elapsed": 8.0, "tally": tally(),
             "breach": 0, "sample": {"status": 200}}
    final.update(kw.pop("final", {}))
    args = dict(stages=STAGES, slo=SLO, open_model=True, target={"kind": "endpoint", "name": "ep", "endpoint": "churn"},
                partial=False)
    args.update(kw)
    return summarize(final, **args)  # type: ignore[arg-type]


def test_the_whole_runs_numbers() -> None:
    s = summary()
    assert {k: s[k] for k in ("version", "partial", "in_progress", "target", "started_at", "ended_at", "duration_s",
                              "requests", "failures", "rps", "dropped", "model", "stopped_after_breach",
                              "sample_response")} == {
        "version": 1, "partial": False, "in_progress": False, "target": {"kind": "endpoint", "name": "churn"},
        "started_at": T0, "ended_at": T0 + 8.25, "duration_s": 8.0, "requests": 24, "failures": 2, "rps": 3.0,
        "dropped": 3, "model": "open", "stopped_after_breach": 0, "sample_response": {"status": 200}}
    # 24 latencies: 8 of 1.0, 4 of 1.5, 8 of 1.8, 4 of 2.0 (p50: the 12th; p90, p95, p99: the 22nd-24th)
    assert s["latency_ms"] == {"p50": 1.5, "p90": 2.0, "p95": 2.0, "p99": 2.0, "p999": 2.0, "max": 2.0,
                               "mean": round((8 * 1.0 + 4 * 1.5 + 8 * 1.8 + 4 * 2.0) / 24, 3)}
    assert s["errors"] == [{"kind": "status", "code": "503", "count": 1},
                           {"kind": "exception", "code": "ConnectionError", "count": 1}]
    assert s["slo"] == {"passed": False, "checks": [
        {"name": "p99_ms", "limit": 1.9, "actual": 2.0, "passed": False},
        {"name": "error_rate", "limit": 0.1, "actual": round(2 / 24, 6), "passed": True},
        {"name": "dropped_rate", "limit": 0.2, "actual": round(3 / 27, 6), "passed": True}]}
    hist = new_histogram()
    hist.decode_and_add(s["histogram"])
    assert hist.get_total_count() == 24 and hist.get_value_at_percentile(50) == 1500


def test_each_stages_numbers_and_steady_numbers() -> None:
    first, second = summary()["stages"]
    assert first == {
        "index": 0, "kind": "step", "start_s": 0.0, "end_s": 4.0, "users": None, "spawn_rate": None, "rate": 4,
        "requests": 16, "failures": 2, "dropped": 0, "rps": 4.0,
        "latency_ms": {"p50": 1.0, "p99": 2.0, "max": 2.0},  # 8 of 1.0, 4 of 1.5, 4 of 2.0
        "steady": {"seconds": 2, "requests": 8, "failures": 1, "dropped": 0, "rps": 4.0,  # seconds 1 and 2
                   "latency_ms": {"p50": 1.5, "p99": 2.0, "max": 2.0}},
        # no CPU sample covers it (the tally was made by hand): whether a limit was hit is not known
        "limited_by": {"load_generator": None, "machine": None, "busiest_process": None, "busiest_machine": None,
                       "loop_delay_ms": None},
        "slo": {"passed": False, "checks": [{"name": "p99_ms", "limit": 1.9, "actual": 2.0, "passed": False},
                                            {"name": "error_rate", "limit": 0.1, "actual": 0.125, "passed": False},
                                            {"name": "dropped_rate", "limit": 0.2, "actual": 0.0, "passed": True}]}}
    assert second["requests"] == 8 and second["dropped"] == 3 and second["rps"] == 2.0
    assert second["latency_ms"] == {"p50": 1.8, "p99": 1.8, "max": 1.8}
    assert second["steady"] == {"seconds": 2, "requests": 4, "failures": 0, "dropped": 3, "rps": 2.0,
                                "latency_ms": {"p50": 1.8, "p99": 1.8, "max": 1.8}}, "seconds 5 and 6"
    assert [c["actual"] for c in second["slo"]["checks"]] == [1.8, 0.0, round(3 / 11, 6)]
    assert second["slo"]["passed"] is False


def test_a_closed_model_reports_no_dropped_and_a_url_target_by_name() -> None:
    s = summary(open_model=False, target={"kind": "url", "name": "http://127.0.0.1:1/x"})
    assert s["model"] == "closed" and s["dropped"] == 0
    assert s["target"] == {"kind": "url", "name": "http://127.0.0.1:1/x"}


def test_without_the_elapsed_time_the_duration_is_the_wall_clocks() -> None:
    s = summary(final={"elapsed": None, "ended_at": T0 + 6.0})
    assert s["duration_s"] == 6.0 and s["rps"] == 4.0
    assert [st["index"] for st in s["stages"]] == [0, 1]


def test_a_stage_without_until_slo_breach_has_no_verdict_of_its_own() -> None:
    s = summary(stages=[Stage(4, rate=4, kind="rate"), Stage(4, rate=2, kind="rate")])
    assert all("slo" not in st for st in s["stages"])


def test_the_slo_table_as_printed() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    render_slo(console, summary())
    assert [line.rstrip() for line in console.file.getvalue().splitlines()] == [
        "24 requests, 2 failures, 3.0 req/s, 3 dropped; p50 1.5 ms, p99 2 ms, max 2 ms",
        "SLO",
        "┏━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━┓",
        "┃ check        ┃ limit ┃   actual ┃ verdict ┃",
        "┡━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━┩",
        "│ p99_ms       │   1.9 │        2 │ FAIL    │",
        "│ error_rate   │   0.1 │ 0.083333 │ pass    │",
        "│ dropped_rate │   0.2 │ 0.111111 │ pass    │",
        "└──────────────┴───────┴──────────┴─────────┘",
    ]


def test_the_slo_table_of_a_stopped_closed_run_without_an_slo() -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    s = summary(slo={}, open_model=False, partial=True)
    s["slo"]["checks"] = []
    s["latency_ms"] = {"p50": None, "p99": None, "max": None}
    render_slo(console, s)
    assert console.file.getvalue().splitlines() == [
        "24 requests, 2 failures, 3.0 req/s; p50 -, p99 -, max - (PARTIAL: the run was stopped)",
        "no SLO set (add `slo:` to the load-test file to get a verdict)"]


def test_a_check_with_no_actual_value_shows_a_dash_and_passes_in_green() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    s = summary()
    s["slo"]["checks"] = [{"name": "p99_ms", "limit": 250, "actual": None, "passed": False},
                          {"name": "min_rps", "limit": 1, "actual": 3.0, "passed": True}]
    render_slo(console, s)
    rows = console.file.getvalue().splitlines()[-3:-1]
    assert rows == ["│ p99_ms  │   250 │      - │ FAIL    │", "│ min_rps │     1 │      3 │ pass    │"]


def test_the_summary_is_written_whole(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = summary()
    write(tmp_path, s)
    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text) == json.loads(json.dumps(s)) and text.endswith("}\n") and text.startswith('{\n  "')
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "no temporary file is left"


def test_an_empty_window_has_no_latencies() -> None:
    assert Window().latency_ms() == {k: None for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean")}


def test_durations_and_rates_are_rounded_to_3_places() -> None:
    """7.98765 s: 24 / 7.98765 = 3.004638 req/s. A stage of 1.23456 s ends at 1.235."""
    s = summary(final={"elapsed": 7.98765}, slo={"min_rps": 3.0})
    assert (s["duration_s"], s["rps"]) == (7.988, 3.005)
    assert s["slo"]["checks"] == [{"name": "min_rps", "limit": 3.0, "actual": 3.004638, "passed": True}]
    stages = [Stage(1.23456, rate=4, kind="step", until_slo_breach=True),
              Stage(6.5, rate=2, kind="step", until_slo_breach=True)]
    short = summary(stages=stages, slo={"min_rps": 3.0}, final={"tally": tally(stages), "elapsed": 7.73456})
    first, second = short["stages"]
    assert (first["end_s"], second["start_s"], second["end_s"]) == (1.235, 1.235, 7.735)
    # stage 1 counts second 0 only (1 s: 4 requests); stage 2 seconds 1-7 (20 requests in 7 s), steady 2-6
    assert (first["rps"], first["slo"]["checks"][0]["actual"]) == (4.0, round(4 / 1.23456, 6))
    assert (second["requests"], second["rps"]) == (20, 2.857)
    assert second["steady"] == {"seconds": 5, "requests": 14, "failures": 1, "dropped": 3, "rps": 2.8,
                                "latency_ms": {"p50": 1.8, "p99": 2.0, "max": 2.0}}
    assert second["slo"]["checks"][0]["actual"] == round(20 / 6.5, 6)


def test_a_run_shorter_than_a_second_divides_by_its_own_length() -> None:
    s = summary(final={"elapsed": 0.5})
    assert (s["duration_s"], s["rps"]) == (0.5, 48.0)
    assert [st["index"] for st in s["stages"]] == [0], "the second stage was never reached"


def test_errors_are_listed_most_frequent_first() -> None:
    t = Tally()
    t.add({"errors": {"status:503": 1, "exception:ConnectionError": 3, "status:500": 2}})
    final = {"started_at": float(T0), "ended_at": T0 + 1.0, "elapsed": 1.0, "tally": t}
    s = summarize(final, STAGES, {}, True, {"kind": "url", "name": "u"}, partial=False)
    assert [(e["code"], e["count"]) for e in s["errors"]] == [("ConnectionError", 3), ("500", 2), ("503", 1)]


def test_seconds_of_stages_the_run_did_not_reach_count_in_the_last_it_reached() -> None:
    stages = [Stage(2, rate=1, kind="step"), Stage(2, rate=1, kind="step"), Stage(2, rate=1, kind="step"),
              Stage(2, rate=1, kind="step")]
    t = Tally(lambda sec: Schedule(stages).stage_of_second(sec - T0))
    rec = Recorder()
    for k in range(8):
        rec.record(T0 + k + 0.5, 1.0, None)
    t.add(rec.drain())
    final = {"started_at": float(T0), "ended_at": T0 + 6.0, "elapsed": 6.0, "tally": t}  # stopped after step 3
    s = summarize(final, stages, {}, True, {"kind": "url", "name": "u"}, partial=False)
    assert [st["requests"] for st in s["stages"]] == [2, 2, 4]


def test_a_steady_rate_is_rounded_to_3_places() -> None:
    stages = [Stage(3, rate=2, kind="step")]  # 3 seconds: all of them steady
    t = Tally(lambda sec: 0, lambda sec, stage: sec - T0 in Schedule(stages).steady_seconds(stage))
    rec = Recorder()
    for k, n in enumerate((3, 2, 2)):
        for j in range(n):
            rec.record(T0 + k + 0.1 * (j + 1), 1.0, None)
    t.add(rec.drain())
    final = {"started_at": float(T0), "ended_at": T0 + 3.0, "elapsed": 3.0, "tally": t}
    [stage] = summarize(final, stages, {}, True, {"kind": "url", "name": "u"}, partial=False)["stages"]
    assert (stage["steady"]["seconds"], stage["steady"]["rps"], stage["rps"]) == (3, 2.333, 2.333)
