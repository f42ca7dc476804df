"""SLO verdicts on hand-computed cases: each check's actual value, its boundary, and what no traffic means.

A limit is inclusive (p99 of exactly 250 ms meets `p99_ms: 250`; `min_rps: 150` is met by 150 req/s);
rates are fractions of the requests (errors) or of the arrivals that were due (dropped); a check with
nothing to measure fails. Written from docs/formats.md, not from the module.
"""

from __future__ import annotations

import pytest

from sme.loadtest.slo import evaluate

LATENCY = {"p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 250.0, "p999": 400.0, "max": 900.0}


def check(slo: dict, requests: int = 1000, failures: int = 0, dropped: int = 0, duration_s: float = 10.0,
          latency: dict | None = None) -> dict:
    [one] = evaluate(slo, requests, failures, dropped, duration_s, LATENCY if latency is None else latency)["checks"]
    return one


@pytest.mark.parametrize("name, key", [("p50_ms", "p50"), ("p90_ms", "p90"), ("p95_ms", "p95"), ("p99_ms", "p99"),
                                       ("p999_ms", "p999"), ("max_ms", "max")])
def test_each_latency_limit_reads_its_own_percentile_and_is_inclusive(name, key):
    value = LATENCY[key]
    assert check({name: value}) == {"name": name, "limit": value, "actual": value, "passed": True}
    assert check({name: value - 0.001})["passed"] is False
    assert check({name: value}, latency={**LATENCY, key: None}) == {"name": name, "limit": value, "actual": None,
                                                                    "passed": False}


def test_error_rate_is_failures_over_requests():
    assert check({"error_rate": 0.02}, requests=1000, failures=20) == {
        "name": "error_rate", "limit": 0.02, "actual": 0.02, "passed": True}
    assert check({"error_rate": 0.0199}, requests=1000, failures=20)["passed"] is False
    assert check({"error_rate": 0.5}, requests=3, failures=1)["actual"] == 0.333333, "six decimals"
    assert check({"error_rate": 1.0}, requests=0, failures=0) == {
        "name": "error_rate", "limit": 1.0, "actual": None, "passed": False}


def test_dropped_rate_is_dropped_over_the_arrivals_that_were_due():
    # 900 sent + 100 dropped = 1000 due: 10%
    assert check({"dropped_rate": 0.1}, requests=900, dropped=100) == {
        "name": "dropped_rate", "limit": 0.1, "actual": 0.1, "passed": True}
    assert check({"dropped_rate": 0.099}, requests=900, dropped=100)["passed"] is False
    assert check({"dropped_rate": 1.0}, requests=0, dropped=5)["actual"] == 1.0
    assert check({"dropped_rate": 1.0}, requests=0, dropped=0)["actual"] is None
    assert check({"dropped_rate": 1.0}, requests=0, dropped=0)["passed"] is False


def test_min_rps_is_requests_over_the_duration_and_is_a_floor():
    assert check({"min_rps": 150}, requests=1500, duration_s=10) == {
        "name": "min_rps", "limit": 150, "actual": 150.0, "passed": True}
    assert check({"min_rps": 150.1}, requests=1500, duration_s=10)["passed"] is False
    assert check({"min_rps": 100}, requests=1500, duration_s=0.5)["actual"] == 3000.0, "half a second counts"
    assert check({"min_rps": 0}, requests=5, duration_s=0) == {"name": "min_rps", "limit": 0, "actual": None,
                                                             "passed": False}


def test_the_run_passes_only_when_every_check_does_and_unknown_names_are_left_out():
    slo = {"p99_ms": 300, "nonsense": 1, "error_rate": 0.01, "min_rps": 50}
    verdict = evaluate(slo, 1000, 5, 0, 10.0, LATENCY)
    assert [c["name"] for c in verdict["checks"]] == ["p99_ms", "error_rate", "min_rps"], "in the order given"
    assert verdict["passed"] is True
    verdict = evaluate(slo, 1000, 11, 0, 10.0, LATENCY)
    assert [c["passed"] for c in verdict["checks"]] == [True, False, True] and verdict["passed"] is False
    assert evaluate({}, 0, 0, 0, 0.0, {}) == {"passed": True, "checks": []}


def test_min_output_tokens_per_s_reads_the_streams_rate_and_is_a_floor():
    """A floor, inclusive: 120.0 tokens/s meets 120 and misses 120.5; a run with no streamed tokens (no
    ``stream`` numbers, or none for the rate) has nothing to meet it with and fails."""
    def verdict(stream, limit=120.0):
        [check] = evaluate({"min_output_tokens_per_s": limit}, 10, 0, 0, 5.0, {}, stream)["checks"]
        return check["actual"], check["passed"]

    assert verdict({"output_tokens_per_s": 120.0}) == (120.0, True)
    assert verdict({"output_tokens_per_s": 240.5}) == (240.5, True)
    assert verdict({"output_tokens_per_s": 120.0}, limit=120.5) == (120.0, False)
    assert verdict({"output_tokens_per_s": 0.0}) == (0.0, False)
    assert verdict({"ttft_ms": {"p99": 80.0}}) == (None, False)
    assert verdict(None) == (None, False)
