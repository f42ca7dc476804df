"""The front door's Lambda handler, called with API Gateway proxy events, against sagemaker-runtime in moto."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest

from sme.gateway import handler as proxy


@pytest.fixture
def runtime(moto, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("SME_ENDPOINT_NAME", "churn")
    monkeypatch.setenv("SME_CONTENT_TYPE", "text/csv")
    monkeypatch.setattr(proxy, "_CLIENT", None)

    def queue(*results):
        body = json.dumps({"results": list(results)}).encode()
        req = urllib.request.Request(f"{moto.url}/moto-api/static/sagemaker/endpoint-results", data=body,
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()

    return queue


def event(body, *, b64=False, headers=None, method="POST"):
    return {"resource": "/invoke", "path": "/invoke", "httpMethod": method, "headers": headers,
            "multiValueHeaders": {}, "queryStringParameters": None, "pathParameters": None,
            "requestContext": {"stage": "prod", "identity": {"apiKey": "k"}},
            "body": body, "isBase64Encoded": b64}


def test_text_body_is_passed_through_with_the_models_content_type(runtime, moto):
    runtime({"Body": "0.93\n", "ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic"})
    reply = proxy.handler(event("1,2,3", headers={"Content-Type": "text/csv", "Accept": "text/csv"}), None)
    assert reply["statusCode"] == 200, reply
    assert reply["body"] == "0.93\n" and reply["isBase64Encoded"] is False
    assert reply["headers"]["Content-Type"] == "text/csv"
    assert reply["headers"]["X-Sme-Variant"] == "AllTraffic"
    assert float(reply["headers"]["X-Sme-Latency-Ms"]) >= 0
    assert [c.path for c in moto.recorder.calls] == ["/endpoints/churn/invocations"]


def spy(monkeypatch):
    seen = {}
    real = proxy._client()

    class Spy:
        def invoke_endpoint(self, **kw):
            seen.update(kw)
            return real.invoke_endpoint(**kw)

    monkeypatch.setattr(proxy, "_CLIENT", Spy())
    return seen


def test_base64_body_is_decoded_and_binary_reply_is_encoded(runtime, monkeypatch):
    runtime({"Body": "\u00ff\u00fe", "ContentType": "application/x-npy"})
    seen = spy(monkeypatch)
    payload = "1,2,3\n4,5,6".encode()  # moto's runtime accepts only UTF-8 bodies; the decoding is what matters
    reply = proxy.handler(event(base64.b64encode(payload).decode(), b64=True,
                                headers={"content-type": "application/x-npy"}), None)
    assert reply["statusCode"] == 200, reply
    assert seen["Body"] == payload and seen["ContentType"] == "application/x-npy"
    assert reply["isBase64Encoded"] is True
    assert base64.b64decode(reply["body"]) == "\u00ff\u00fe".encode()


def test_missing_content_type_uses_the_default(runtime, monkeypatch):
    seen = spy(monkeypatch)
    reply = proxy.handler(event("1,2,3", headers=None), None)
    assert reply["statusCode"] == 200 and seen["ContentType"] == "text/csv" and seen["EndpointName"] == "churn"
    assert "Accept" not in seen


@pytest.mark.parametrize("evt, status, words", [
    (event(None), 400, "empty"),
    (event("!!!not base64", b64=True), 400, "base64"),
    (event("1,2", method="GET"), 405, "POST"),
])
def test_bad_requests_are_4xx_with_a_reason(runtime, evt, status, words):
    reply = proxy.handler(evt, None)
    assert reply["statusCode"] == status and words in json.loads(reply["body"])["reason"]


@pytest.mark.parametrize("status, code, message, expect", [
    (424, "ModelError", "Received server error (500) from primary: division by zero", 502),
    (400, "ThrottlingException", "Rate exceeded", 429),
    (400, "ValidationError", "Endpoint churn of account 123456789012 not found.", 503),
    (503, "ServiceUnavailable", "try again", 503),
])
def test_runtime_errors_map_to_status_codes_without_stack_traces(runtime, moto, status, code, message, expect):
    moto.recorder.fault = lambda call: (status, code, message) if call.path.endswith("/invocations") else None
    import botocore.config

    proxy._CLIENT = __import__("boto3").client("sagemaker-runtime",
                                              config=botocore.config.Config(retries={"max_attempts": 1}))
    reply = proxy.handler(event("1,2,3"), None)
    assert reply["statusCode"] == expect, reply
    data = json.loads(reply["body"])
    assert reply["headers"]["Content-Type"] == "application/json"
    assert "Traceback" not in reply["body"] and "File \"" not in reply["body"]
    if code == "ModelError":
        assert data["error"] == "model error" and "division by zero" in data["reason"]


def test_unexpected_failure_is_500_without_details(runtime, monkeypatch):
    class Broken:
        def invoke_endpoint(self, **kw):
            raise RuntimeError("secret internals /var/task/handler.py line 3")

    monkeypatch.setattr(proxy, "_CLIENT", Broken())
    reply = proxy.handler(event("1"), None)
    assert reply["statusCode"] == 500 and "secret internals" not in reply["body"]
