"""`sme watch`'s live output says units: CloudWatch gives SageMaker latencies in microseconds and API
Gateway's and Lambda's in milliseconds; the user reads every latency in ms, utilisation in %, counts per
window. The watch file keeps CloudWatch's own units."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from sme.watch.live import History, shown, summary_line, table
from sme.watch.metrics import unit_of


@pytest.mark.parametrize("key, value, window, text", [
    ("ModelLatency", 649.0, None, "0.649 ms"),  # microseconds, as the issue saw it
    ("OverheadLatency:p99", 12_345.0, None, "12.3 ms"),
    ("ModelSetupTime", 2_500_000.0, None, "2,500 ms"),
    ("Latency", 20.0, None, "20.0 ms"),  # API Gateway: already milliseconds
    ("IntegrationLatency:p99", 4.25, None, "4.25 ms"),
    ("Duration", 130.0, None, "130 ms"),
    ("CPUUtilization", 142.0, None, "142.0%"),
    ("Invocations", 12.0, 5.0, "12.0 per 5s"),
    ("Count", 3600.0, 60.0, "3,600.0 per 1m00s"),
    ("ModelLatency:SampleCount", 7.0, 60.0, "7.0 per 1m00s"),  # a count of latencies is a count
    ("Invocations", None, 5.0, "-"),
])
def test_every_metric_is_shown_with_its_unit(key, value, window, text):
    assert shown(key, value, window) == text


def test_units_follow_cloudwatch():
    assert [unit_of(k) for k in ("ModelLatency", "Latency", "CPUUtilization", "Invocations", "5XXError")] == \
        ["us", "ms", "%", "count", "count"]


RECORD = {"slot": 3, "endpoint": "churn", "status": "InService", "window": [100.0, 105.0],
          "variants": [{"name": "AllTraffic", "current_instances": 1, "desired_instances": 1}],
          "metrics": {"AllTraffic": {"Invocations": 250.0, "ModelLatency": 649.0}},
          "front_door": {"api_name": "sme-churn", "function_name": "sme-churn-proxy",
                         "metrics": {"Count": 250.0, "Latency": 11.5}}}


def test_the_plain_line_names_units_for_the_endpoint_and_the_front_door():
    line = summary_line(RECORD)
    assert "AllTraffic.ModelLatency=0.649 ms" in line and "AllTraffic.Invocations=250.0 per 5s" in line, line
    assert "front_door.Latency=11.5 ms" in line and "front_door.Count=250.0 per 5s" in line, line


def test_the_live_table_shows_units_and_the_front_door_rows():
    history = History()
    history.add(RECORD)
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(table(RECORD, history, "", []))
    text = out.getvalue()
    assert "AllTraffic ModelLatency" in text and "0.649 ms" in text, text
    assert "front door Latency" in text and "11.5 ms" in text, text
    assert "649.0" not in text, "a bare microsecond count must not be shown"
