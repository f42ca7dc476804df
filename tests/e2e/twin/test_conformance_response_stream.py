"""InvokeEndpointWithResponseStream on the twin, as botocore sees it, against a TGI-image endpoint.

The endpoint is deployed as a user deploys a TGI model: a TGI image URI and HF_MODEL_ID, no model data.
Its runtime logs when it sent each token (SME_TOKEN_LOG in the model's Environment): the oracle for what
arrived and when. The AWS CLI v1 has no invoke-endpoint-with-response-stream (it leaves event-stream
operations out), so botocore is the client here.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

LLM = "conformance-llm"
TGI_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.4.0-tgi2.4.0-gpu-py311-cu124-ubuntu22.04"


@pytest.fixture(scope="module")
def llm(twin, tmp_path_factory):
    log = tmp_path_factory.mktemp("llm") / "tokens.jsonl"
    sm = twin.client("sagemaker")
    sm.create_model(ModelName=LLM, ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": TGI_IMAGE, "Environment": {
                        "HF_MODEL_ID": "sme/alice", "SME_TOKEN_LOG": str(log)}})
    sm.create_endpoint_config(EndpointConfigName=LLM, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": LLM, "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.xlarge"}])
    sm.create_endpoint(EndpointName=LLM, EndpointConfigName=LLM)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=LLM, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return log


def stream(twin, body: dict, **extra) -> tuple[dict, list[bytes], list[float]]:
    runtime = twin.client("sagemaker-runtime")
    reply = runtime.invoke_endpoint_with_response_stream(EndpointName=LLM, ContentType="application/json",
                                                         Body=json.dumps(body), **extra)
    parts, arrivals = [], []
    for event in reply["Body"]:
        parts.append(event["PayloadPart"]["Bytes"])
        arrivals.append(time.time())
    return reply, parts, arrivals


def sse(data: bytes) -> list[dict]:
    return [json.loads(block[len(b"data:"):]) for block in data.split(b"\n\n") if block]


def test_botocore_reads_the_stream_as_payload_parts_with_the_model_content_type_and_variant(twin, llm):
    request = {"inputs": "The Queen", "stream": True,
               "parameters": {"max_new_tokens": 10, "details": True, "do_sample": True, "seed": 11}}
    reply, parts, _ = stream(twin, request)
    assert reply["ContentType"] == "text/event-stream" and reply["InvokedProductionVariant"] == "AllTraffic"
    assert len(parts) >= 10, "one part per token as the runtime wrote them, not one buffered body"
    events = sse(b"".join(parts))
    assert [e["index"] for e in events] == list(range(1, 11))
    assert events[-1]["details"]["generated_tokens"] == 10
    # the same request answered whole through InvokeEndpoint: the same seed gives the same tokens
    whole = twin.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=LLM, ContentType="application/json", Body=json.dumps({**request, "stream": False}))
    [answer] = json.loads(whole["Body"].read())
    assert events[-1]["generated_text"] == answer["generated_text"]
    assert [e["token"]["id"] for e in events] == [t["id"] for t in answer["details"]["tokens"]]


def test_parts_arrive_when_the_runtime_sent_its_tokens(twin, llm):
    _, parts, arrivals = stream(twin, {"inputs": "Alice", "stream": True, "parameters": {"max_new_tokens": 15}},
                                CustomAttributes="stream-timing")
    [record] = [r for r in map(json.loads, llm.read_text().splitlines()) if r["request_id"] == "stream-timing"]
    assert record["tokens"] == len(sse(b"".join(parts))) == 15
    assert len(arrivals) == len(record["sent_at"]), "one PayloadPart per token event the runtime wrote"
    lags = [arrived - sent for arrived, sent in zip(arrivals, record["sent_at"])]
    assert all(-0.001 < lag < 0.05 for lag in lags), f"each part within 50 ms of its sending: {lags}"
    assert record["sent_at"][-1] - record["sent_at"][0] > 0.1, "15 tokens at >= 12 ms a step"


def test_errors_before_the_stream_are_invoke_endpoints_errors(twin, llm):
    runtime = twin.client("sagemaker-runtime")
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint_with_response_stream(EndpointName="nope", ContentType="application/json", Body="{}")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(runtime.exceptions.ModelError) as refused:
        runtime.invoke_endpoint_with_response_stream(EndpointName=LLM, ContentType="text/plain", Body="hello")
    response = refused.value.response
    assert response["OriginalStatusCode"] == 415, "TGI's own refusal of a body that is not JSON"
    assert "Expected request with `Content-Type: application/json`" in response["OriginalMessage"]


def test_a_validation_error_streams_as_tgi_sends_it(twin, llm):
    _, parts, _ = stream(twin, {"inputs": "x", "stream": True, "parameters": {"temperature": -1}})
    assert sse(b"".join(parts)) == [{"error": "Input validation error: `temperature` must be strictly positive",
                                     "error_type": "validation"}]


def test_streams_are_counted_in_the_endpoints_metrics(twin, llm):
    for _ in range(3):
        stream(twin, {"inputs": "Alice", "stream": True, "parameters": {"max_new_tokens": 3}})
    cloudwatch = twin.client("cloudwatch")
    deadline, total = time.time() + 30, 0.0
    while time.time() < deadline:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations", Statistics=["Sum"], Period=60,
            Dimensions=[{"Name": "EndpointName", "Value": LLM}, {"Name": "VariantName", "Value": "AllTraffic"}],
            StartTime=time.time() - 900, EndTime=time.time() + 60)["Datapoints"]
        total = sum(p["Sum"] for p in points)
        if total >= 3:
            break
        time.sleep(1)
    assert total >= 3, f"three streams, {total} invocations published"
