"""CloudWatch on the twin, as botocore and the AWS CLI see it: percentiles, period boundaries, ListMetrics.

Each test names the AWS behaviour (GetMetricData, GetMetricStatistics, PutMetricData, ListMetrics API
references) it checks. Each test puts its metrics in a namespace of its own.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

DIMS = [{"Name": "Shard", "Value": "1"}]


def query(qid: str, namespace: str, stat: str, name: str = "Latency", dims=DIMS, period: int = 60) -> dict:
    return {"Id": qid, "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
                                      "Period": period, "Stat": stat}}


@pytest.fixture
def minute():
    """7 s into the current minute, so a 60 s period's boundary is 7 s before the data."""
    return datetime.now(timezone.utc).replace(second=7, microsecond=0)


def put_one_to_hundred(cw, namespace: str, at: datetime) -> None:
    cw.put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": "Latency", "Dimensions": DIMS, "Timestamp": at, "Unit": "Milliseconds",
        "Values": [float(v) for v in range(1, 101)], "Counts": [1.0] * 100}])


def test_get_metric_data_answers_percentiles_of_the_values_put(twin, minute):
    cw = twin.client("cloudwatch")
    put_one_to_hundred(cw, "conf/pct", minute)
    reply = cw.get_metric_data(StartTime=minute - timedelta(minutes=5), EndTime=minute + timedelta(minutes=1),
                               MetricDataQueries=[query("p50", "conf/pct", "p50"), query("p99", "conf/pct", "p99"),
                                                  query("count", "conf/pct", "SampleCount")])
    values = {r["Id"]: r["Values"] for r in reply["MetricDataResults"]}
    assert values == {"p50": [50.0], "p99": [99.0], "count": [100.0]}, "Values with Counts: 100 samples"


def test_get_metric_statistics_answers_extended_statistics(twin, minute):
    cw = twin.client("cloudwatch")
    put_one_to_hundred(cw, "conf/ext", minute)
    (point,) = cw.get_metric_statistics(Namespace="conf/ext", MetricName="Latency", Dimensions=DIMS,
                                        StartTime=minute - timedelta(minutes=5), EndTime=minute + timedelta(minutes=1),
                                        Period=60, ExtendedStatistics=["p50", "p90", "p100"])["Datapoints"]
    assert point["ExtendedStatistics"] == {"p50": 50.0, "p90": 90.0, "p100": 100.0}
    assert point["Unit"] == "Milliseconds"
    with pytest.raises(ClientError) as caught:  # "either Statistics or ExtendedStatistics, but not both"
        cw.get_metric_statistics(Namespace="conf/ext", MetricName="Latency", Dimensions=DIMS, Period=60,
                                 StartTime=minute - timedelta(minutes=5), EndTime=minute + timedelta(minutes=1),
                                 Statistics=["Sum"], ExtendedStatistics=["p50"])
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_statistic_set_counts_for_percentiles_only_when_it_holds_one_value(twin, minute):
    cw = twin.client("cloudwatch")
    spread = {"SampleCount": 3.0, "Sum": 6.0, "Minimum": 1.0, "Maximum": 3.0}
    single = {"SampleCount": 4.0, "Sum": 20.0, "Minimum": 5.0, "Maximum": 5.0}
    for namespace, stats in (("conf/spread", spread), ("conf/single", single)):
        cw.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "Latency", "Dimensions": DIMS,
                                                             "Timestamp": minute, "StatisticValues": stats}])
    reply = cw.get_metric_data(StartTime=minute - timedelta(minutes=5), EndTime=minute + timedelta(minutes=1),
                               MetricDataQueries=[query("spread", "conf/spread", "p99"),
                                                  query("single", "conf/single", "p99"),
                                                  query("avg", "conf/spread", "Average")])
    values = {r["Id"]: r["Values"] for r in reply["MetricDataResults"]}
    assert values == {"spread": [], "single": [5.0], "avg": [2.0]}


def test_periods_start_on_the_period_boundary(twin, minute):
    cw = twin.client("cloudwatch")
    for offset, value in ((0, 1.0), (30, 2.0), (60, 4.0)):  # :07 and :37 of one minute, :07 of the next
        cw.put_metric_data(Namespace="conf/align", MetricData=[{
            "MetricName": "Latency", "Dimensions": DIMS, "Value": value, "Timestamp": minute + timedelta(seconds=offset)}])
    start = minute - timedelta(seconds=3)  # :04 is rounded down to the whole minute
    reply = cw.get_metric_data(StartTime=start, EndTime=minute + timedelta(minutes=2), ScanBy="TimestampAscending",
                               MetricDataQueries=[query("sum", "conf/align", "Sum"),
                                                  query("sum30", "conf/align", "Sum", period=30)])
    by_id = {r["Id"]: r for r in reply["MetricDataResults"]}
    boundary = minute.replace(second=0)
    assert by_id["sum"]["Timestamps"] == [boundary, boundary + timedelta(minutes=1)]
    assert by_id["sum"]["Values"] == [3.0, 4.0]
    assert by_id["sum30"]["Timestamps"] == [boundary, boundary + timedelta(seconds=30), boundary + timedelta(seconds=60)]
    assert by_id["sum30"]["Values"] == [1.0, 2.0, 4.0]


def test_a_query_matches_a_metrics_dimensions_exactly(twin, minute):
    cw = twin.client("cloudwatch")
    for dims, value in ((DIMS, 1.0), (DIMS + [{"Name": "Zone", "Value": "a"}], 10.0)):
        cw.put_metric_data(Namespace="conf/dims", MetricData=[{"MetricName": "Latency", "Dimensions": dims,
                                                               "Value": value, "Timestamp": minute}])
    reply = cw.get_metric_data(StartTime=minute - timedelta(minutes=5), EndTime=minute + timedelta(minutes=1),
                               MetricDataQueries=[query("one", "conf/dims", "Sum")])
    assert reply["MetricDataResults"][0]["Values"] == [1.0], "each combination of dimensions is its own metric"


def test_list_metrics_lists_each_metric_once_however_often_it_was_put(twin):
    cw = twin.client("cloudwatch")
    two_dims = DIMS + [{"Name": "Zone", "Value": "a"}]
    for _ in range(3):
        cw.put_metric_data(Namespace="conf/list", MetricData=[
            {"MetricName": "Latency", "Dimensions": two_dims, "Value": 1.0},
            {"MetricName": "Latency", "Value": 1.0}])
    result = twin.aws("cloudwatch", "list-metrics", "--namespace", "conf/list")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["Metrics"]
    assert sorted(len(m.get("Dimensions", [])) for m in metrics) == [0, 2], metrics


def test_the_twins_model_latency_has_percentiles_after_invocations(twin):
    runtime, cw = twin.client("sagemaker-runtime"), twin.client("cloudwatch")
    for _ in range(20):
        runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body=twin.payload_rows[0])
    dims = [{"Name": "EndpointName", "Value": twin.endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    deadline = time.time() + 15  # `sme local start` publishes every 5 s
    while True:
        end = datetime.now(timezone.utc) + timedelta(minutes=1)
        reply = cw.get_metric_data(StartTime=end - timedelta(minutes=10), EndTime=end, MetricDataQueries=[
            query(q, "AWS/SageMaker", stat, name="ModelLatency", dims=dims) for q, stat in
            (("p50", "p50"), ("p99", "p99"), ("n", "SampleCount"), ("max", "Maximum"))])
        found = {r["Id"]: r["Values"] for r in reply["MetricDataResults"]}
        if sum(found["n"]) >= 20 or time.time() > deadline:
            break
        time.sleep(1)
    assert sum(found["n"]) >= 20, found
    assert found["p50"] and found["p99"], f"p50 and p99 of the twin's ModelLatency: {found}"
    assert 0 < max(found["p50"]) <= max(found["p99"]) <= max(found["max"]) * 1.005, found
