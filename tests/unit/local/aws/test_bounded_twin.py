"""The twin's memory stays bounded over a long run: CloudWatch data rolled up to minutes, calls kept up to a limit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sme.local.aws.patches import cloudwatch
from sme.local.aws.server import CALLS_KEPT, Call, Recorder

DIMS = [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}]
STATS = ("Sum", "SampleCount", "Average", "Minimum", "Maximum", "p50", "p90", "p99")


@pytest.fixture
def backend():
    from moto.cloudwatch.models import CloudWatchBackend

    cloudwatch.install()
    return CloudWatchBackend("us-east-1", "123456789012")


def _stats(backend, name: str, start: datetime, minutes: int) -> dict:
    buckets = cloudwatch._buckets(backend, "AWS/SageMaker", name, DIMS, None, start, start + timedelta(minutes=minutes), 60)
    return {t: {s: cloudwatch.statistic(s, data) for s in STATS} for t, data in buckets.items()}


def _put_every_2s(backend, start: datetime, seconds: int) -> None:
    for i in range(0, seconds, 2):
        at = start + timedelta(seconds=i)
        backend.put_metric_data("AWS/SageMaker", [
            {"MetricName": "Invocations", "Dimensions": DIMS, "Value": float(i % 7), "Unit": "None", "Timestamp": at},
            {"MetricName": "ModelLatency", "Dimensions": DIMS, "Unit": "Microseconds", "Timestamp": at,
             "Values": [100.0 + i, 250.0, 900.0 + i % 5], "Counts": [3.0, 1.0, float(i % 3)]}])


def test_old_data_points_become_one_a_minute_with_every_statistic_unchanged(backend):
    start = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    _put_every_2s(backend, start, 300)  # five minutes at the twin's demo period
    before = {name: _stats(backend, name, start, 5) for name in ("Invocations", "ModelLatency")}
    cloudwatch.roll_up(backend, ("AWS/SageMaker",), start + timedelta(minutes=4))
    after = {name: _stats(backend, name, start, 5) for name in ("Invocations", "ModelLatency")}
    assert after == before
    assert len(backend.metric_data) == 2 * 4 + 2 * 30, "4 minutes rolled up (2 metrics), the last one as it was"
    cloudwatch.roll_up(backend, ("AWS/SageMaker",), start + timedelta(minutes=4))
    assert len(backend.metric_data) == 68 and _stats(backend, "ModelLatency", start, 5) == before["ModelLatency"]


def test_other_namespaces_stay_as_put_and_data_past_retention_is_dropped(backend):
    start = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    _put_every_2s(backend, start, 60)
    backend.put_metric_data("Custom", [{"MetricName": "X", "Value": 1.0, "Timestamp": start}])
    cloudwatch.roll_up(backend, ("AWS/SageMaker",), start + timedelta(days=16))
    assert [(md.namespace, md.name) for md in backend.metric_data] == [("Custom", "X")]


def test_the_recorder_keeps_the_last_calls_only():
    recorder = Recorder(app=None)
    for i in range(CALLS_KEPT + 10):
        recorder.record(Call("sagemaker", f"POST /endpoints/e{i}/invocations", "POST", f"/endpoints/e{i}/invocations"))
    assert len(recorder.calls) == CALLS_KEPT
    assert recorder.calls[0].path == "/endpoints/e10/invocations"
    assert recorder.calls[-1].path == f"/endpoints/e{CALLS_KEPT + 9}/invocations"
