"""CloudWatch's per-minute queue and processing times for an asynchronous endpoint, read with botocore's
Stubber (it checks the queries against CloudWatch's service model): exact means from Sum / SampleCount over
every variant, maxima, and a wait until InvocationsProcesssed counts the run's finished requests."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sme.loadtest.async_split import section

SUMMARY = {"started_at": 1_800_000_030.0, "async": {"succeeded": 9, "failed": 1}}


def reply(values: dict[str, list[float]]) -> dict:
    return {"MetricDataResults": [{"Id": qid, "Label": qid, "Timestamps": [], "Values": v, "StatusCode": "Complete"}
                                  for qid, v in values.items()]}


def minutes(processed_a: float) -> dict[str, list[float]]:
    """Two variants, two minutes each: A processed ``processed_a`` requests, B three."""
    out: dict[str, list[float]] = {}
    for i, (backlog, model, total, count) in enumerate([((2000.0, 1000.0), (40000.0, 30000.0), (50.0, 40.0),
                                                         (processed_a, 0.0)),
                                                        ((300.0,), (9000.0,), (12.0,), (3.0,))]):
        samples = [count[0] + count[1] if len(count) > 1 else count[0]] if count else []
        out |= {f"queue_sum_{i}": list(backlog), f"queue_samplecount_{i}": samples,
                f"queue_maximum_{i}": [900.0 + i], f"model_sum_{i}": list(model), f"model_samplecount_{i}": samples,
                f"model_maximum_{i}": [20000.0], f"total_processing_sum_{i}": list(total),
                f"total_processing_samplecount_{i}": samples, f"total_processing_maximum_{i}": [30.0 + i],
                f"processed_sum_{i}": list(count)}
    return out


def test_the_split_waits_for_cloudwatch_to_count_the_run_then_gives_exact_means_and_maxima():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
    clock, slept, said = [1_800_000_100.0], [], []
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_data", reply(minutes(4.0)), {"MetricDataQueries": ANY, "StartTime": ANY,
                                                                   "EndTime": ANY})
        stub.add_response("get_metric_data", reply(minutes(7.0)), {"MetricDataQueries": ANY, "StartTime": ANY,
                                                                   "EndTime": ANY})
        out = section(cloudwatch, "ep", ["A", "B"], SUMMARY, said.append, clock=lambda: clock[0],
                      sleep=slept.append)
    assert len(slept) == 1, "read again once: 4 + 3 of 10 requests were counted the first time"
    assert out["complete"] and out["requests_processed"] == 10
    assert out["queue_ms"] == {"mean": pytest.approx(3.3 / 10), "max": 0.901, "samples": 10}
    assert out["model_ms"]["mean"] == pytest.approx(79.0 / 10) and out["model_ms"]["max"] == 20.0
    assert out["total_processing_ms"] == {"mean": pytest.approx(102.0 / 10), "max": 31.0, "samples": 10}
    assert "not per request" in out["source"] and "InvocationsProcesssed" in said[0]


def test_the_split_says_it_is_partial_when_cloudwatch_never_counts_the_run(monkeypatch):
    monkeypatch.setenv("SME_CLOUDWATCH_WAIT_S", "0")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_data", reply(minutes(1.0)))
        out = section(cloudwatch, "ep", ["A", "B"], SUMMARY, lambda _: None, clock=lambda: 1_800_000_100.0,
                      sleep=lambda _: None)
    assert not out["complete"] and out["requests_processed"] == 4
