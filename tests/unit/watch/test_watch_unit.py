"""`sme watch` parts without a server: schedule (fake clock), metric queries, headroom, file, retries, alerts."""

from __future__ import annotations

import json
from datetime import datetime, timezone
import pytest

from sme.errors import UserError
from sme.watch import metrics as cw
from sme.watch.live import alerts, sparkline, summary_line
from sme.watch.network import headroom, is_sagemaker_eni, subnet_rows
from sme.watch.retry import CallFailed, Retrier
from sme.watch.sample import Sampler, Target
from sme.watch.schedule import Schedule, Scheduler
from sme.watch.sink import SampleWriter, read_records, resume_point, to_csv


class FakeClock:
    """Monotonic and wall clocks that only move when slept on (or when a sample 'takes' time)."""

    def __init__(self, wall0: float = 1_790_000_000.0):
        self.mono, self.offset = 100.0, wall0 - 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.mono + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds


def run_schedule(clock, interval, last_slot, took, first=0, start=None):
    """Run a schedule whose sample k takes took(k) seconds; returns the emitted records."""
    out = []

    def take(slot, due, deadline):
        record = {"slot": slot, "due": due, "time": clock.wall(), "missed": False, "deadline": deadline}
        clock.mono += took(slot)
        return record

    schedule = Schedule(clock.wall() if start is None else start, interval, last_slot)
    Scheduler(schedule, clock.clock, clock.wall, clock.sleep).run(first, take, out.append)
    return out


# -- schedule ---------------------------------------------------------------------------------------
def test_slots_are_due_at_start_plus_k_intervals_whatever_each_sample_takes():
    clock = FakeClock()
    start = clock.wall()
    records = run_schedule(clock, 10.0, 5, took=lambda k: 3.7)
    assert [r["slot"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert [r["due"] for r in records] == [start + 10 * k for k in range(6)]
    assert [r["time"] for r in records] == pytest.approx([start + 10 * k for k in range(6)]), "no drift"
    assert max(clock.sleeps) <= 1.0, "the wait is cut into ticks so a display can count down"


def test_a_slow_sample_misses_slots_but_does_not_shift_later_ones():
    clock = FakeClock()
    start = clock.wall()
    records = run_schedule(clock, 10.0, 5, took=lambda k: 25.0 if k == 1 else 1.0)
    assert [(r["slot"], r["missed"]) for r in records] == [
        (0, False), (1, False), (2, True), (3, False), (4, False), (5, False)]
    assert records[3]["time"] == pytest.approx(start + 35.0), "slot 3 runs late, inside its own interval"
    assert records[4]["time"] == pytest.approx(start + 40.0), "slot 4 is back on schedule"


def test_resuming_marks_the_dead_time_as_missed_and_continues_the_old_schedule():
    clock = FakeClock()
    start = clock.wall() - 42.0  # a watch began 42 s ago; slots 0..1 are in the file
    records = run_schedule(clock, 10.0, 6, took=lambda k: 0.5, first=2, start=start)
    assert [(r["slot"], r["missed"]) for r in records] == [
        (2, True), (3, True), (4, False), (5, False), (6, False)]
    assert records[2]["time"] == pytest.approx(start + 42.0), "slot 4 (due at 40 s) is still in its interval"
    assert records[3]["time"] == pytest.approx(start + 50.0)


def test_duration_sets_the_last_slot():
    assert Schedule.last_slot_for(7200, 900) == 8  # 2 h at 15 min: 9 samples, start and end included
    assert Schedule.last_slot_for(4, 1) == 4
    assert Schedule.last_slot_for(None, 1) is None


# -- metrics ----------------------------------------------------------------------------------------
# SageMaker's endpoint metrics and the statistic each is read with (docs.aws.amazon.com, "Monitor Amazon
# SageMaker AI with Amazon CloudWatch"), written out by hand: not the module's own table
DEFAULTS = {
    "Invocations": ("AWS/SageMaker", "Sum"), "InvocationsPerInstance": ("AWS/SageMaker", "Sum"),
    "ModelLatency": ("AWS/SageMaker", "Average"), "OverheadLatency": ("AWS/SageMaker", "Average"),
    "Invocation4XXErrors": ("AWS/SageMaker", "Sum"), "Invocation5XXErrors": ("AWS/SageMaker", "Sum"),
    "ModelSetupTime": ("AWS/SageMaker", "Maximum"),
    "CPUUtilization": ("/aws/sagemaker/Endpoints", "Average"), "MemoryUtilization": ("/aws/sagemaker/Endpoints", "Average"),
    "DiskUtilization": ("/aws/sagemaker/Endpoints", "Average"), "GPUUtilization": ("/aws/sagemaker/Endpoints", "Average"),
    "GPUMemoryUtilization": ("/aws/sagemaker/Endpoints", "Average"),
}


def test_default_metric_set_is_every_metric_with_its_statistic():
    specs = cw.parse_metric_specs([])
    assert {s.name: (s.namespace, s.stat) for s in specs} == DEFAULTS
    assert {s.key for s in specs} == set(DEFAULTS), "default statistics are keyed by the metric's name"


def test_metric_flags_choose_statistics_and_p99_is_opt_in():
    specs = cw.parse_metric_specs(["Invocations,ModelLatency:Maximum", "CPUUtilization"], p99=True)
    assert [s.key for s in specs] == ["Invocations", "ModelLatency:Maximum", "CPUUtilization",
                                      "ModelLatency:p99", "OverheadLatency:p99"]
    assert all(s.stat != "p99" for s in cw.parse_metric_specs([])), "no percentile unless asked"
    with pytest.raises(UserError, match="unknown metric 'Latency'"):
        cw.parse_metric_specs(["Latency"])
    with pytest.raises(UserError, match="unknown statistic 'Median'"):
        cw.parse_metric_specs(["ModelLatency:Median"])


@pytest.mark.parametrize("interval, period", [(1, 1), (4, 5), (10, 10), (20, 30), (60, 60), (61, 120), (900, 900)])
def test_period_is_one_cloudwatch_accepts(interval, period):
    assert cw.period_for(interval) == period


def test_get_metric_data_request_matches_the_service_model():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("cloudwatch", region_name="us-east-1")
    series = cw.series_for(["AllTraffic"], cw.parse_metric_specs(["Invocations", "CPUUtilization:Maximum"]))
    stub = Stubber(client)
    stub.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": "m0", "Values": [3.0, 4.0]}, {"Id": "m1", "Values": [50.0, 70.0]}]},
        {"MetricDataQueries": cw.build_queries("churn", series, 60),
         "StartTime": datetime.fromtimestamp(1000, timezone.utc), "EndTime": datetime.fromtimestamp(1060, timezone.utc),
         "ScanBy": "TimestampDescending"})
    with stub:
        got = cw.fetch(lambda kw: client.get_metric_data(**kw), "churn", series, 1000, 1060, 60)
    assert got == {"AllTraffic": {"Invocations": 7.0, "CPUUtilization:Maximum": 70.0}}
    query = cw.build_queries("churn", series, 60)[1]["MetricStat"]
    assert query["Metric"]["Namespace"] == "/aws/sagemaker/Endpoints" and query["Stat"] == "Maximum"


def test_600_series_take_two_calls_and_next_tokens_are_followed():
    calls = []

    def call(kwargs):
        calls.append(kwargs)
        ids = [q["Id"] for q in kwargs["MetricDataQueries"]]
        if len(calls) == 1:
            return {"MetricDataResults": [{"Id": i, "Values": [1.0]} for i in ids], "NextToken": "more"}
        return {"MetricDataResults": [{"Id": i, "Values": [1.0]} for i in ids]}

    variants = [f"V{i}" for i in range(10)]
    specs = tuple(cw.MetricSpec(n, ns, stat) for n, (ns, _) in DEFAULTS.items()
                  for stat in ("Sum", "Average", "Maximum", "Minimum", "SampleCount"))
    series = cw.series_for(variants, specs)
    assert len(series) == 600
    got = cw.fetch(call, "churn", series, 0, 60, 60)
    assert [len(c["MetricDataQueries"]) for c in calls] == [500, 500, 100], "two chunks, the first paged once"
    assert calls[1]["NextToken"] == "more"
    assert got["V0"]["Invocations"] == 2.0, "values of one series across pages are combined (Sum)"


def test_combine_uses_the_series_statistic():
    assert cw.combine("Sum", [1, 2, 3]) == 6
    assert cw.combine("Average", [1, 2, 3]) == 2
    assert cw.combine("Maximum", [1, 5, 3]) == 5
    assert cw.combine("p99", [1, 5, 3]) == 5
    assert cw.combine("Sum", []) is None


# -- subnets and headroom ---------------------------------------------------------------------------
def test_sagemaker_interfaces_are_told_apart_by_requester_or_description():
    assert is_sagemaker_eni({"RequesterId": "AROAEXAMPLE:SageMaker", "Description": ""})
    assert is_sagemaker_eni({"Description": "SageMaker Endpoint churn"})
    assert not is_sagemaker_eni({"Description": "AWS Lambda VPC ENI-fn", "RequesterId": "AROA:lambda"})


def test_headroom_sums_free_addresses_per_az_and_leaves_room_for_blue_green():
    subnets = [{"SubnetId": "subnet-a", "AvailabilityZone": "us-east-1a", "AvailableIpAddressCount": 10},
               {"SubnetId": "subnet-b", "AvailabilityZone": "us-east-1a", "AvailableIpAddressCount": 5},
               {"SubnetId": "subnet-c", "AvailabilityZone": "us-east-1b", "AvailableIpAddressCount": 1}]
    enis = [{"SubnetId": "subnet-a", "Description": "SageMaker"}, {"SubnetId": "subnet-a", "Description": "x"}]
    rows = subnet_rows(subnets, enis)
    assert rows[0] == {"id": "subnet-a", "az": "us-east-1a", "free_ips": 10, "sagemaker_enis": 1}
    room = headroom(rows, desired_instances=20)
    assert room == {"per_az": {"us-east-1a": 15, "us-east-1b": 1}, "total": 16, "blue_green_spare": -4}
    assert headroom([], 2) is None


# -- file -------------------------------------------------------------------------------------------
def test_a_torn_last_line_is_cut_and_the_schedule_resumes_after_the_last_slot(tmp_path):
    path = tmp_path / "w.jsonl"
    good = [{"slot": k, "due": 100.0 + 15 * k, "interval": 15.0, "endpoint": "churn", "missed": False,
             "events": [{"id": f"a{k}", "kind": "scaling"}]} for k in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"slot": 3, "du')
    writer = SampleWriter(path)
    found = writer.open(resume=True)
    assert (found.start, found.interval, found.next_slot, found.endpoint) == (100.0, 15.0, 3, "churn")
    assert found.event_ids == {"a0", "a1", "a2"}
    writer.write({"slot": 3})
    writer.close()
    records, _ = read_records(path)
    assert [r["slot"] for r in records] == [0, 1, 2, 3]


def test_an_existing_file_is_not_appended_to_without_resume(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"slot": 0}\n')
    with pytest.raises(UserError, match="already exists"):
        SampleWriter(path).open(resume=False)


def test_resume_needs_slot_due_and_interval(tmp_path):
    with pytest.raises(UserError, match="cannot be resumed"):
        resume_point(tmp_path / "w.jsonl", [{"slot": 1}])


def test_csv_has_one_column_per_series_and_blanks_for_gaps():
    records = [
        {"slot": 0, "due": 1.0, "time": 1.1, "missed": False, "status": "InService",
         "variants": [{"name": "A", "current_instances": 1, "desired_instances": 1}],
         "metrics": {"A": {"Invocations": 5.0, "ModelLatency": None}},
         "subnets": [{"id": "subnet-a", "az": "az1", "free_ips": 9, "sagemaker_enis": 1}],
         "headroom": {"per_az": {"az1": 9}, "total": 9, "blue_green_spare": 8}, "events": [], "errors": []},
        {"slot": 1, "due": 2.0, "time": 2.0, "missed": True, "interval": 1.0},
    ]
    lines = to_csv(records).splitlines()
    header = lines[0].split(",")
    for col in ("A.Invocations", "A.ModelLatency", "A.current_instances", "subnet-a.free_ips",
                "subnet-a.sagemaker_enis", "headroom.total", "headroom.az1", "headroom.blue_green_spare"):
        assert col in header, header
    row = dict(zip(header, lines[1].split(",")))
    assert (row["A.Invocations"], row["A.ModelLatency"], row["headroom.az1"]) == ("5.0", "", "9")
    missed = dict(zip(header, lines[2].split(",")))
    assert missed["missed"] == "True" and missed["A.Invocations"] == ""


# -- retries ----------------------------------------------------------------------------------------
def client_error(code, status=400):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code}!"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "DescribeEndpoint")


class Replies:
    """A call that raises or returns these, in turn (the last one forever), and counts its calls."""

    def __init__(self, *replies):
        self.replies, self.call_count = list(replies), 0

    def __call__(self):
        reply = self.replies[min(self.call_count, len(self.replies) - 1)]
        self.call_count += 1
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_throttling_is_retried_with_backoff_until_it_succeeds():
    clock = FakeClock()
    fn = Replies(client_error("ThrottlingException"), client_error("InternalError", 500), "ok")
    retrier = Retrier(clock.clock, clock.sleep, rng=lambda: 1.0)
    assert retrier.call("DescribeEndpoint", fn, deadline=clock.clock() + 10) == "ok"
    assert clock.sleeps == [0.1, 0.2], "exponential backoff"


def test_retries_stop_at_the_sample_deadline():
    clock = FakeClock()
    fn = Replies(client_error("ThrottlingException"))
    with pytest.raises(CallFailed) as failed:
        Retrier(clock.clock, clock.sleep, rng=lambda: 1.0).call("GetMetricData", fn, deadline=clock.clock() + 1.0)
    assert failed.value.code == "ThrottlingException" and failed.value.attempts >= 3
    assert sum(clock.sleeps) < 1.0


def test_permanent_and_credential_errors_are_not_retried():
    clock = FakeClock()
    fn = Replies(client_error("ExpiredTokenException"))
    with pytest.raises(CallFailed) as failed:
        Retrier(clock.clock, clock.sleep).call("DescribeEndpoint", fn, deadline=clock.clock() + 60)
    assert fn.call_count == 1 and failed.value.expired_credentials


# -- a sample ---------------------------------------------------------------------------------------
def test_a_failing_part_is_recorded_and_the_rest_of_the_sample_is_kept():
    """Real boto3 clients with botocore's Stubber: each call's parameters are checked against the service
    model (a call with a wrong name or argument fails here, as it would against AWS)."""
    import boto3
    from botocore.stub import Stubber

    clock = FakeClock()
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    now = datetime.fromtimestamp(clock.wall(), timezone.utc)
    specs = cw.parse_metric_specs(["Invocations"])
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cwatch:
        sm.add_response("describe_endpoint", {
            "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
            "EndpointConfigName": "churn-config-1", "EndpointStatus": "InService", "CreationTime": now,
            "LastModifiedTime": now, "ProductionVariants": [
                {"VariantName": "A", "CurrentInstanceCount": 2, "DesiredInstanceCount": 3}]},
            {"EndpointName": "churn"})
        sm.add_response("describe_endpoint_config", {  # the variants' instance types, once per config
            "EndpointConfigName": "churn-config-1", "CreationTime": now,
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/churn-config-1",
            "ProductionVariants": [{"VariantName": "A", "ModelName": "m", "InstanceType": "ml.m5.large",
                                    "InitialInstanceCount": 3}]}, {"EndpointConfigName": "churn-config-1"})
        cwatch.add_client_error("get_metric_data", service_error_code="AccessDenied", service_message="AccessDenied!",
                                http_status_code=400, expected_params={
                                    "MetricDataQueries": cw.build_queries("churn", cw.series_for(["A"], specs), 60),
                                    "StartTime": datetime.fromtimestamp(clock.wall() - 60, timezone.utc),
                                    "EndTime": datetime.fromtimestamp(clock.wall(), timezone.utc),
                                    "ScanBy": "TimestampDescending"})
        clients = {"sagemaker": sagemaker, "cloudwatch": cloudwatch}
        sampler = Sampler(clients.__getitem__, Target("churn", ("A",)), specs, 60.0,
                          Retrier(clock.clock, clock.sleep), clock.wall, events_since=0.0)
        record = sampler.take(0, clock.wall(), clock.clock() + 60)
        sm.assert_no_pending_responses()
        cwatch.assert_no_pending_responses()
    assert record["status"] == "InService"
    assert record["variants"] == [{"name": "A", "current_instances": 2, "desired_instances": 3,
                                   "instance_type": "ml.m5.large"}]
    assert record["errors"] == [{"source": "GetMetricData", "code": "AccessDenied", "message": "AccessDenied!",
                                 "attempts": 1}]
    assert record["window"] == [record["due"] - 60, record["due"]]
    assert sampler.expired is None


# -- display ----------------------------------------------------------------------------------------
def test_alerts_name_low_headroom_a_blue_green_shortfall_and_errors():
    record = {"slot": 3, "headroom": {"per_az": {"a": 2, "b": 30}, "total": 32, "blue_green_spare": -1},
              "errors": [{"source": "GetMetricData", "code": "Throttling", "message": "slow down"}]}
    got = alerts(record, threshold=5)
    assert any(line.startswith("a: headroom 2 < 5") for line in got), got
    assert any("blue/green" in line for line in got), got
    assert any("GetMetricData failed (Throttling)" in line for line in got), got
    assert not any(line.startswith("headroom 32") for line in got)
    assert alerts({"slot": 1, "headroom": {"per_az": {"a": 50}, "total": 50, "blue_green_spare": 48}}, 5) == []


def test_sparkline_and_summary():
    assert sparkline([0.0, 1.0, None, 2.0]) == "▁▄ █"
    line = summary_line({"slot": 2, "status": "InService", "variants": [
        {"name": "A", "current_instances": 2, "desired_instances": 2}], "metrics": {"A": {"Invocations": 5.0}},
        "headroom": {"per_az": {"az1": 9}, "total": 9}, "errors": []})
    assert line == "slot 2  InService  A 2/2  A.Invocations=5.0  headroom 9 (az1 9)"


def test_watch_options_reject_bad_intervals_before_any_call():
    from sme.vpcwatch import WatchOptions

    for kwargs, words in (({"interval": 0.5}, "out of range"), ({"interval": 86401}, "out of range"),
                          ({"interval": 60, "duration": 30}, "shorter than the interval"),
                          ({"resume": True}, "--resume needs")):
        with pytest.raises(UserError, match=words):
            WatchOptions(endpoint="churn", **kwargs).check()
    WatchOptions(endpoint="churn", interval=60, duration=30, once=True).check()


def test_live_view_renders_table_trends_headroom_and_alerts():
    import io

    from sme.console import Env
    from sme.watch.live import LiveView

    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    env = Env(stdout=io.StringIO(), stderr=err)
    env._err = __import__("rich.console", fromlist=["Console"]).Console(file=err, force_terminal=True, width=160)
    record = {"slot": 0, "endpoint": "churn", "status": "InService", "missed": False,
              "variants": [{"name": "A", "current_instances": 2, "desired_instances": 2}],
              "metrics": {"A": {"Invocations": 5.0}}, "subnets": [{"id": "subnet-a", "az": "az1", "free_ips": 3,
                                                                   "sagemaker_enis": 2}],
              "headroom": {"per_az": {"az1": 3}, "total": 3, "blue_green_spare": 1}, "errors": []}
    with LiveView(env, threshold=5) as view:
        view.sample(record)
        view.sample({**record, "slot": 1, "metrics": {"A": {"Invocations": 9.0}}})
        view.waiting(2, 4.2)
    text = err.getvalue()
    for word in ("A Invocations", "9.0", "headroom: 3 more instances", "ALERT headroom 3 < 5", "next sample (slot 2)"):
        assert word in text, f"{word!r} not shown"


def test_an_async_endpoint_is_sampled_with_its_four_backlog_series_by_endpoint_name():
    """The endpoint config's AsyncInferenceConfig adds the queue's series (dimension EndpointName only) to the
    same GetMetricData call; they come back under ``async_queue``, apart from the variants' series."""
    import boto3
    from botocore.stub import Stubber

    clock = FakeClock()
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    now = datetime.fromtimestamp(clock.wall(), timezone.utc)
    specs = cw.parse_metric_specs(["Invocations"])
    series = cw.series_for(["A"], specs) + cw.async_series("churn", True)
    queries = cw.build_queries("churn", series, 60)
    assert [q["MetricStat"]["Metric"]["Dimensions"] for q in queries[1:]] == [
        [{"Name": "EndpointName", "Value": "churn"}]] * 4
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cwatch:
        sm.add_response("describe_endpoint", {
            "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
            "EndpointConfigName": "churn-config-1", "EndpointStatus": "InService", "CreationTime": now,
            "LastModifiedTime": now, "ProductionVariants": [
                {"VariantName": "A", "CurrentInstanceCount": 0, "DesiredInstanceCount": 0}]},
            {"EndpointName": "churn"})
        sm.add_response("describe_endpoint_config", {
            "EndpointConfigName": "churn-config-1", "CreationTime": now,
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/churn-config-1",
            "ProductionVariants": [{"VariantName": "A", "ModelName": "m", "InstanceType": "ml.m5.large",
                                    "InitialInstanceCount": 1}],
            "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://results/out/"}}},
            {"EndpointConfigName": "churn-config-1"})
        cwatch.add_response("get_metric_data", {"MetricDataResults": [
            {"Id": f"m{i}", "Values": values} for i, values in enumerate([[], [7.0, 5.0], [7.0], [1.0, 0.0], [42.0]])]},
            {"MetricDataQueries": queries, "StartTime": datetime.fromtimestamp(clock.wall() - 60, timezone.utc),
             "EndTime": datetime.fromtimestamp(clock.wall(), timezone.utc), "ScanBy": "TimestampDescending"})
        sampler = Sampler({"sagemaker": sagemaker, "cloudwatch": cloudwatch}.__getitem__, Target("churn", ("A",)),
                          specs, 60.0, Retrier(clock.clock, clock.sleep), clock.wall, events_since=0.0)
        record = sampler.take(0, clock.wall(), clock.clock() + 60)
        cwatch.assert_no_pending_responses()
    assert record["errors"] == []
    assert record["metrics"] == {"A": {"Invocations": None}}, "the queue's series are not a variant's"
    assert record["async_queue"]["metrics"] == {"ApproximateBacklogSize": 6.0, "ApproximateBacklogSizePerInstance": 7.0,
                                                "HasBacklogWithoutCapacity": 1.0, "ApproximateAgeOfOldestRequest": 42.0}
