"""A serverless run's throttles and cold starts: error keys carry the AWS error code, and the summary's
``serverless`` section waits for CloudWatch to count the run's requests (botocore Stubber: the calls are
checked against the service models)."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
from botocore.stub import ANY, Stubber

from sme.loadtest import serverless
from sme.loadtest.results import _errors
from sme.loadtest.stats import error_key


def test_an_error_reply_that_names_its_aws_error_code_is_counted_under_it():
    assert error_key(400, None, "ThrottlingException") == "status:400:ThrottlingException"
    assert error_key(400, None, "ThrottlingException:http://internal.amazon.com/coral/") == \
        "status:400:ThrottlingException", "the namespace after ':' is not part of the code (botocore drops it)"
    assert error_key(503, None, None) == "status:503" and error_key(503, None, "") == "status:503"
    assert error_key(0, TimeoutError(), "ThrottlingException") == "exception:TimeoutError"
    assert _errors({"status:400:ThrottlingException": 7, "status:424": 2, "exception:TimeoutError": 1}) == [
        {"kind": "status", "code": "400", "error_code": "ThrottlingException", "count": 7},
        {"kind": "status", "code": "424", "count": 2},
        {"kind": "exception", "code": "TimeoutError", "count": 1}]


class Aws:
    def __init__(self):
        kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        self.clients = {name: boto3.client(name, **kw) for name in ("sagemaker", "cloudwatch")}
        self.stubs = {name: Stubber(c) for name, c in self.clients.items()}

    def client(self, name):
        return self.clients[name]


def _endpoint(stub: Stubber, provisioned: int | None = 2) -> None:
    config = {"MemorySizeInMB": 2048, "MaxConcurrency": 10, **({"ProvisionedConcurrency": provisioned}
                                                                if provisioned else {})}
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stub.add_response("describe_endpoint", {
        "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
        "EndpointConfigName": "churn-1", "EndpointStatus": "InService", "CreationTime": when,
        "LastModifiedTime": when,
        "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentServerlessConfig": config}]},
        {"EndpointName": "churn"})


def _metrics(stub: Stubber, invocations: list[float], setups: list[float], avg: list[float], top: list[float]):
    results = [{"Id": qid, "Values": values, "StatusCode": "Complete"}
               for qid, values in (("invocations", invocations), ("setups", setups), ("setup_avg", avg),
                                   ("setup_max", top))]
    stub.add_response("get_metric_data", {"MetricDataResults": results},
                      {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY})


SUMMARY = {"started_at": 1_000_000.0, "requests": 160,
           "errors": [{"kind": "status", "code": "400", "error_code": "ThrottlingException", "count": 78},
                      {"kind": "exception", "code": "TimeoutError", "count": 2}]}


def test_the_section_waits_until_cloudwatch_counts_every_request_taken_in_then_reads_the_cold_starts(monkeypatch):
    monkeypatch.setenv(serverless.WAIT_ENV, "60")
    aws, slept, now = Aws(), [], [1_000_010.0]
    _endpoint(aws.stubs["sagemaker"])
    _metrics(aws.stubs["cloudwatch"], [50.0], [1.0], [2000000.0], [2000000.0])  # CloudWatch still behind
    _metrics(aws.stubs["cloudwatch"], [60.0, 20.0], [1.0, 2.0], [2000000.0, 500000.0], [2000000.0, 600000.0])
    for stub in aws.stubs.values():
        stub.activate()

    def sleep(s):
        slept.append(s)
        now[0] += s

    found = serverless.serverless_variant(aws.client("sagemaker"), "churn")
    out = serverless.section(aws, "churn", found, SUMMARY, lambda _: None, clock=lambda: now[0], sleep=sleep)
    assert slept == [serverless.POLL_S], "one more read once CloudWatch lagged"
    assert out["requests_taken_in"] == 160 - 78 - 2 == out["cloudwatch_invocations"] and out["complete"]
    assert out["throttles"] == 78 and out["cold_starts"] == 3
    # hand-computed: (1 x 2.0 s + 2 x 0.5 s) / 3 = 1.0 s; the maximum of the periods' maxima
    assert out["model_setup_time_ms"] == {"average": 1000.0, "max": 2000.0}
    assert (out["max_concurrency"], out["provisioned_concurrency"], out["memory_mb"]) == (10, 2, 2048)


def test_when_cloudwatch_never_catches_up_the_section_says_its_cold_starts_are_a_lower_bound(monkeypatch):
    monkeypatch.setenv(serverless.WAIT_ENV, "3")
    aws, now = Aws(), [1_000_010.0]
    _endpoint(aws.stubs["sagemaker"], provisioned=None)
    for _ in range(3):
        _metrics(aws.stubs["cloudwatch"], [10.0], [], [], [])
    for stub in aws.stubs.values():
        stub.activate()

    def sleep(s):
        now[0] += s

    found = serverless.serverless_variant(aws.client("sagemaker"), "churn")
    out = serverless.section(aws, "churn", found, SUMMARY, lambda _: None, clock=lambda: now[0], sleep=sleep)
    assert not out["complete"] and out["cloudwatch_invocations"] == 10 and out["cold_starts"] == 0
    assert out["model_setup_time_ms"] == {"average": None, "max": None}

    class Console:
        lines: list[str] = []

        def print(self, text, markup=False):
            self.lines.append(text)

    console = Console()
    serverless.render(console, out)
    assert console.lines[0] == "serverless (max concurrency 10): 0 cold starts, 78 throttled (400 ThrottlingException)"
    assert "lower bound" in console.lines[1]


def test_an_instance_endpoint_has_no_serverless_section():
    aws = Aws()
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    aws.stubs["sagemaker"].add_response("describe_endpoint", {
        "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
        "EndpointConfigName": "churn-1", "EndpointStatus": "InService", "CreationTime": when,
        "LastModifiedTime": when, "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 1}]})
    aws.stubs["sagemaker"].add_response("describe_endpoint_config", {
        "EndpointConfigName": "churn-1", "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:x/churn-1",
        "CreationTime": when, "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m",
                                                      "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]})
    aws.stubs["sagemaker"].activate()
    assert serverless.serverless_variant(aws.client("sagemaker"), "churn") is None
