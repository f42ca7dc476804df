"""summary.json's stream and async parts, the SLO keys on streamed answers, and the lines `sme loadtest` prints
for them: from answers chosen here, every number worked out by hand (bench/mutants found these unchecked)."""

from __future__ import annotations

import io

from rich.console import Console

from sme.loadtest.config import Stage
from sme.loadtest.results import render_slo, stream_numbers, summarize
from sme.loadtest.shapes import Schedule
from sme.loadtest.stats import Recorder, Tally, Window

T0 = 1000
STREAM_TARGET = {"kind": "url", "name": "x", "stream": "sse"}
ASYNC_DONE = {"submitted": 7, "succeeded": 5, "failed": 1, "pending": 1, "queue_ms": {"p50": 3.0}}


def three_answers(stages: list[Stage]) -> Tally:
    """Three streamed answers in seconds 0, 1 and 2: first tokens at 1, 1.5 and 2 ms, 4 output tokens each
    (one gap of 0.5 ms each), requests of 2 ms; and one request of 1 ms that failed before any token (second 2).
    (Under 2,048 us every microsecond is a bucket of its own: the percentiles are these values exactly.)"""
    schedule = Schedule(stages)
    tally = Tally(lambda sec: schedule.stage_of_second(sec - T0))
    tally.first_second = T0
    rec = Recorder()
    for k, ttft in enumerate((1.0, 1.5, 2.0)):
        rec.record_stream(T0 + k + 0.5, ttft, [500], tokens=4)
        rec.record(T0 + k + 0.5, 2.0, None)
    rec.record(T0 + 2.6, 1.0, "status:500")
    tally.add(rec.drain(wire=False))
    return tally


def run(stages: list[Stage], slo: dict, target: dict, **final) -> dict:
    return summarize({"started_at": T0, "ended_at": T0 + 3, "elapsed": 3.0, "tally": three_answers(stages), **final},
                     stages, slo, False, target, partial=False)


def test_the_slo_keys_on_streamed_answers_are_judged_on_the_runs_stream_numbers():
    s = run([Stage(3, users=2)], {"ttft_p99_ms": 1.8, "ttft_p50_ms": 1.6, "min_output_tokens_per_s": 4.5},
            STREAM_TARGET)
    assert s["stream"]["ttft_ms"] == {"p50": 1.5, "p90": 2.0, "p99": 2.0, "max": 2.0}
    # 12 output tokens over 3 s
    assert (s["stream"]["output_tokens"], s["stream"]["output_tokens_per_s"]) == (12, 4.0)
    checks = {c["name"]: (c["actual"], c["passed"]) for c in s["slo"]["checks"]}
    assert checks == {"ttft_p99_ms": (2.0, False), "ttft_p50_ms": (1.5, True),
                      "min_output_tokens_per_s": (4.0, False)}
    assert s["slo"]["passed"] is False


def test_a_step_of_a_ladder_is_judged_on_its_own_stream_numbers():
    steps = [Stage(2, rate=1, kind="step", until_slo_breach=True), Stage(1, rate=2, kind="step",
                                                                         until_slo_breach=True)]
    s = run(steps, {"ttft_p99_ms": 1.8}, STREAM_TARGET)
    first, second = s["stages"]
    assert first["slo"]["checks"] == [{"name": "ttft_p99_ms", "limit": 1.8, "actual": 1.5, "passed": True}]
    assert second["slo"]["checks"] == [{"name": "ttft_p99_ms", "limit": 1.8, "actual": 2.0, "passed": False}]
    # the second step is one second long: 4 tokens in it
    assert (second["stream"]["output_tokens"], second["stream"]["output_tokens_per_s"]) == (4, 4.0)


def test_a_window_without_streamed_answers_has_no_tokens_and_a_rate_only_over_some_time():
    w = Window()
    w.add({2000: 2}, 2, 2, 0)  # two requests, both failed before a token
    numbers = stream_numbers(w, 2.0)
    assert (numbers["output_tokens"], numbers["requests_with_tokens"], numbers["output_tokens_per_s"]) == (0, 0, 0.0)
    assert numbers["ttft_ms"] == {"p50": None, "p90": None, "p99": None, "max": None}
    assert numbers["e2e_ms"]["p50"] == 2.0, "the requests' own latency, from the window when not given"
    tally = three_answers([Stage(3, users=1)])
    assert stream_numbers(tally.whole, 0)["output_tokens_per_s"] is None, "no seconds: no rate"
    assert stream_numbers(tally.whole, 1)["output_tokens_per_s"] == 12.0
    assert stream_numbers(tally.whole, 7)["output_tokens_per_s"] == 1.714, "12 / 7, to 3 places"


def test_an_asynchronous_run_keeps_its_accounting_and_no_byte_counts():
    s = run([Stage(3, users=1)], {}, {"kind": "endpoint", "name": "x", "endpoint": "ep"}, **{"async": ASYNC_DONE})
    assert s["async"] == ASYNC_DONE and "bytes" not in s
    plain = run([Stage(3, users=1)], {}, {"kind": "url", "name": "x"})
    assert "async" not in plain and plain["bytes"] == {"sent": 0, "received": 0}
    assert "bytes" not in run([Stage(3, users=1)], {}, STREAM_TARGET), "a stream's bytes are read past Locust"


def printed(summary: dict) -> list[str]:
    out = io.StringIO()
    render_slo(Console(file=out, width=400, color_system=None, highlight=False), summary)
    return out.getvalue().splitlines()


def test_the_printed_lines_give_the_stream_and_async_numbers():
    s = run([Stage(3, users=1)], {}, STREAM_TARGET, **{"async": ASYNC_DONE})
    lines = printed(s)
    assert lines[0] == "4 requests, 1 failures, 1.3 req/s; p50 2 ms, p99 2 ms, max 2 ms"
    assert lines[1] == ("stream: 12 output tokens (4.0 tokens/s) from 3 answers; time to first token p50 1.5 ms, "
                        "p99 2 ms; inter-token p50 0.5 ms, p99 0.5 ms")
    assert lines[2] == ("asynchronous: 7 submitted: 5 succeeded, 1 failed, 1 still pending at the end "
                        "(latency: send until the result object was seen)")
    assert lines[3] == "no SLO set (add `slo:` to the load-test file to get a verdict)"
    s["stream"]["output_tokens_per_s"] = None  # a run that lasted no time: no rate, said as such
    assert printed(s)[1].startswith("stream: 12 output tokens (- tokens/s) from 3 answers")


def test_a_stage_the_machine_limited_is_said_in_a_note():
    s = run([Stage(3, users=1)], {}, {"kind": "url", "name": "x"})
    s["stages"][0]["limited_by"] = {"machine": True, "busiest_machine": {"host": "h", "mean": 0.95,
                                                                         "saturated_share": 1.0}}
    notes = [line for line in printed(s) if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: stage 1: the machine was the limit: h's cores were 95% busy")
