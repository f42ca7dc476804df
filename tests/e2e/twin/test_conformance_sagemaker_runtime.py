"""SageMaker Runtime InvokeEndpoint on the twin, as botocore, the AWS CLI and raw HTTP see it.

Each test names the AWS behaviour (InvokeEndpoint API reference, botocore's service model) it checks.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def signed_post(twin, name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    """A SigV4-signed POST sent by urllib, which adds a form Content-Type when none is given."""
    url = f"{twin.url}/endpoints/{name}/invocations"
    request = AWSRequest("POST", url, data=body, headers=headers)
    SigV4Auth(Credentials("local", "local"), "sagemaker", "us-east-1").add_auth(request)
    return _send(urllib.request.Request(url, data=body, headers=dict(request.prepare().headers), method="POST"))


def _send(request: urllib.request.Request) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_a_prediction_answers_200_with_the_model_content_type_and_the_variant(twin):
    reply = twin.client("sagemaker-runtime").invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv",
                                                            Body=twin.payload_rows[0])
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert reply["ContentType"].startswith("text/csv") and reply["InvokedProductionVariant"] == "AllTraffic"
    assert 0.0 <= float(reply["Body"].read()) <= 1.0


def test_a_model_error_is_424_model_error_with_the_original_status_and_message(twin):
    runtime = twin.client("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body="not,a,number")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 415, "the container's own status (415: a body it cannot read)"
    assert "Loading csv data failed" in response["OriginalMessage"], "the container's own words"
    assert response["Error"]["Message"].startswith("Received client error (415) from primary with message")
    assert response["LogStreamArn"].endswith(f"/aws/sagemaker/Endpoints/{twin.endpoint}")


def test_an_unknown_endpoint_is_400_validation_error(twin):
    runtime = twin.client("sagemaker-runtime")
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv", Body="1")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400 and error["Error"]["Code"] == "ValidationError"
    assert error["Error"]["Message"] == "Endpoint no-such-endpoint of account 123456789012 not found."


def test_the_aws_cli_exits_non_zero_on_a_model_error_and_an_unknown_endpoint(twin, tmp_path):
    out = str(tmp_path / "reply")
    bad = twin.aws("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", twin.endpoint,
                   "--content-type", "text/csv", "--body", "a,b", out)
    assert bad.returncode != 0 and "(ModelError)" in bad.stderr, bad.stderr
    gone = twin.aws("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "nope", "--content-type", "text/csv",
                    "--body", "1", out)
    assert gone.returncode != 0 and "(ValidationError)" in gone.stderr, gone.stderr
    good = twin.aws("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", twin.endpoint,
                    "--content-type", "text/csv", "--body", twin.payload_rows[0], out)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["InvokedProductionVariant"] == "AllTraffic"


def test_the_body_reaches_the_model_whatever_its_content_type_or_bytes(twin):
    # a form Content-Type is the model's business (415 from the container), not the service's (moto: 404)
    status, headers, body = signed_post(twin, twin.endpoint, b"1,2", {})
    assert status == 424 and headers["x-amzn-errortype"] == "ModelError"
    assert json.loads(body)["OriginalStatusCode"] == 415
    # bytes that are not UTF-8 are the model's to judge too (moto: HTML 500)
    status, headers, body = signed_post(twin, twin.endpoint, b"\xff\xfe1,2", {"Content-Type": "text/csv"})
    assert status == 424 and json.loads(body)["OriginalStatusCode"] == 415


def test_a_body_over_6_mb_is_refused_with_413_before_the_model(twin):
    runtime = twin.client("sagemaker-runtime")
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body=b"1" * (6291456 + 1))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "6291456" in caught.value.response["Error"]["Message"]
    reply = runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body=twin.payload_rows[0])
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200, "the endpoint still answers after a refusal"


def test_an_unsigned_request_is_403_missing_authentication_token(twin):
    from botocore import UNSIGNED

    runtime = twin.client("sagemaker-runtime", signature_version=UNSIGNED)
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body=twin.payload_rows[0])
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
