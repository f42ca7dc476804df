"""SageMaker Runtime InvokeEndpointAsync on the twin, as botocore sees it.

Each test names the AWS behaviour it checks (the InvokeEndpointAsync API reference, botocore's service model,
the Asynchronous Inference guide). The endpoint's model is a handler script that sleeps as long as its input
asks (a backlog forms at will) and raises on ``fail``.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tests.e2e.twin.conftest import IMAGE

ASYNC = "conformance-async"
BUCKET = "conformance-async"
SCRIPT = (
    "import time\n"
    "def model_fn(model_dir):\n    return None\n"
    "def transform_fn(model, body, content_type, accept):\n"
    "    text = body.decode() if isinstance(body, bytes) else body\n"
    "    if text.strip() == 'fail':\n        raise RuntimeError('asked to fail')\n"
    "    time.sleep(float(text))\n    return 'slept ' + text.strip()\n"
)


def _pack(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def async_endpoint(twin):
    s3, sm = twin.client("s3"), twin.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="model/sleeper.tar.gz", Body=_pack({"code/inference.py": SCRIPT}))
    sm.create_model(ModelName=ASYNC, ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model/sleeper.tar.gz",
                                      "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(
        EndpointConfigName=ASYNC,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": ASYNC, "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/out/",
                                               "S3FailurePath": f"s3://{BUCKET}/failed/"},
                              "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1}})
    sm.create_endpoint(EndpointName=ASYNC, EndpointConfigName=ASYNC)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ASYNC, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return ASYNC


def _input(twin, key: str, text: str) -> str:
    twin.client("s3").put_object(Bucket=BUCKET, Key=f"in/{key}", Body=text.encode())
    return f"s3://{BUCKET}/in/{key}"


def _wait_for_object(twin, uri: str, timeout: float = 30.0) -> dict:
    s3 = twin.client("s3")
    bucket, _, key = uri[5:].partition("/")
    deadline = time.time() + timeout
    while True:
        try:
            return s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            assert time.time() < deadline, f"{uri} was never written"
            time.sleep(0.1)


def test_a_request_answers_202_with_both_locations_and_the_output_lands_there(twin, async_endpoint):
    runtime = twin.client("sagemaker-runtime")
    reply = runtime.invoke_endpoint_async(EndpointName=async_endpoint, InputLocation=_input(twin, "a", "0.01"),
                                          ContentType="text/plain", InferenceId="request-a")
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert reply["InferenceId"] == "request-a", "the caller's InferenceId comes back"
    assert reply["OutputLocation"] == f"s3://{BUCKET}/out/request-a.out"
    assert reply["FailureLocation"] == f"s3://{BUCKET}/failed/request-a-error.out"
    output = _wait_for_object(twin, reply["OutputLocation"])
    assert output["Body"].read() == b"slept 0.01"


def test_without_an_inference_id_the_twin_makes_one_and_names_the_output_by_it(twin, async_endpoint):
    reply = twin.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=async_endpoint, InputLocation=_input(twin, "b", "0"))
    assert len(reply["InferenceId"]) == 36, "a UUID"
    assert reply["OutputLocation"].endswith(f"/out/{reply['InferenceId']}.out")
    _wait_for_object(twin, reply["OutputLocation"])


def test_a_model_error_is_written_to_the_failure_path_not_the_output_path(twin, async_endpoint):
    reply = twin.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=async_endpoint, InputLocation=_input(twin, "c", "fail"), InferenceId="request-c")
    failure = json.loads(_wait_for_object(twin, reply["FailureLocation"])["Body"].read())
    assert failure["OriginalStatusCode"] == 500 and "asked to fail" in failure["OriginalMessage"]
    with pytest.raises(ClientError):
        twin.client("s3").head_object(Bucket=BUCKET, Key="out/request-c.out")


@pytest.mark.parametrize("case", ["unknown endpoint", "real-time endpoint", "no input location",
                                  "input does not exist"])
def test_what_cannot_be_queued_is_400_validation_error(twin, async_endpoint, case):
    name = {"unknown endpoint": "no-such-endpoint", "real-time endpoint": twin.endpoint}.get(case, async_endpoint)
    kwargs = {"EndpointName": name}
    if case != "no input location":
        kwargs["InputLocation"] = f"s3://{BUCKET}/in/missing" if case == "input does not exist" else \
            _input(twin, "d", "0")
    with pytest.raises(ClientError) as caught:
        twin.client("sagemaker-runtime").invoke_endpoint_async(**kwargs)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationError", error


def test_a_backlog_is_published_with_the_endpoint_name_and_served_one_at_a_time(twin, async_endpoint):
    runtime, cloudwatch = twin.client("sagemaker-runtime"), twin.client("cloudwatch")
    start = datetime.now(timezone.utc) - timedelta(seconds=5)
    sent = time.time()
    replies = [runtime.invoke_endpoint_async(EndpointName=async_endpoint, InputLocation=_input(twin, f"e{i}", "1.5"),
                                             InferenceId=f"backlog-{i}") for i in range(8)]
    written = [_wait_for_object(twin, r["OutputLocation"], timeout=60)["LastModified"] for r in replies]
    # MaxConcurrentInvocationsPerInstance = 1 on one instance: 8 x 1.5 s one after another, not together (a
    # backlog of 2 or more lasts ~9 s, longer than the twin's 5 s metrics period: a flush always sees it)
    assert max(w.timestamp() for w in written) - sent >= 8 * 1.5 - 1.0, "requests must queue, one at a time"
    deadline = time.time() + 15
    while True:
        stats = {name: _maximum(cloudwatch, async_endpoint, name, start)
                 for name in ("ApproximateBacklogSize", "ApproximateBacklogSizePerInstance",
                              "HasBacklogWithoutCapacity", "ApproximateAgeOfOldestRequest")}
        if stats["ApproximateBacklogSize"] is not None and stats["ApproximateBacklogSize"] >= 2:
            break
        assert time.time() < deadline, f"no backlog published: {stats}"
        time.sleep(1)
    assert stats["ApproximateBacklogSizePerInstance"] == stats["ApproximateBacklogSize"], "one instance"
    assert stats["HasBacklogWithoutCapacity"] == 0, "the endpoint had an instance all along"
    assert stats["ApproximateAgeOfOldestRequest"] > 0
    # "Any metric not listed below is not published if the endpoint is enabled for asynchronous inference. Such
    # metrics include (but are not limited to): OverheadLatency, Invocations, InvocationsPerInstance" (AWS's
    # guide); the invocation metrics it does list are (ModelLatency, published once the requests are processed)
    deadline = time.time() + 15
    while not _named(cloudwatch, async_endpoint, "ModelLatency"):
        assert time.time() < deadline, "no ModelLatency published for the processed requests"
        time.sleep(1)
    for metric in ("Invocations", "OverheadLatency", "InvocationsPerInstance"):
        assert _named(cloudwatch, async_endpoint, metric) == [], f"{metric} is not published for async endpoints"


def _named(cloudwatch, endpoint: str, metric: str) -> list:
    found = cloudwatch.list_metrics(Namespace="AWS/SageMaker", MetricName=metric)["Metrics"]
    return [m for m in found if {"Name": "EndpointName", "Value": endpoint} in m["Dimensions"]]


def _maximum(cloudwatch, endpoint: str, metric: str, start: datetime) -> float | None:
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName=metric, Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        StartTime=start, EndTime=datetime.now(timezone.utc) + timedelta(seconds=60), Period=60,
        Statistics=["Maximum"])["Datapoints"]
    return max((p["Maximum"] for p in points), default=None)
