"""API Gateway (REST, Lambda proxy integration) -> SageMaker InvokeEndpoint.

Deployed by sme as the front door's function; it uses only the standard library and boto3 (both in the
Lambda Python runtime). The endpoint comes from ``SME_ENDPOINT_NAME``; a request without a Content-Type
gets ``SME_CONTENT_TYPE``. Errors are mapped to status codes with a one-line reason, never a stack trace:

    400  empty or undecodable body          405  not a POST
    502  the model raised an error (ModelError), or SageMaker refused the request
    503  the endpoint is missing, not ready or overloaded      429  throttled
    500  anything else (logged with its traceback, answered without it)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)
_CLIENT = None
TEXT_TYPES = ("text/", "application/json", "application/jsonlines", "application/x-ndjson", "application/xml")


def _client():
    global _CLIENT
    if _CLIENT is None:
        import boto3
        from botocore.config import Config

        _CLIENT = boto3.client("sagemaker-runtime", config=Config(retries={"mode": "standard", "max_attempts": 2},
                                                                  read_timeout=60))
    return _CLIENT


def handler(event, context):  # noqa: ARG001 - Lambda's signature
    method = (event.get("httpMethod") or "POST").upper()
    if method != "POST":
        return _reply(405, {"error": "method not allowed", "reason": "send the payload with POST"})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        body = _body(event)
    except ValueError as exc:
        return _reply(400, {"error": "bad request", "reason": str(exc)})
    if not body:
        return _reply(400, {"error": "bad request", "reason": "the request body is empty; send the model's input"})
    kwargs = {"EndpointName": os.environ["SME_ENDPOINT_NAME"], "Body": body,
              "ContentType": headers.get("content-type") or os.environ.get("SME_CONTENT_TYPE", "text/csv")}
    if headers.get("accept"):
        kwargs["Accept"] = headers["accept"]
    started = time.perf_counter()
    try:
        reply = _client().invoke_endpoint(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
        return _error(exc)
    payload = reply["Body"].read()
    latency_ms = (time.perf_counter() - started) * 1000
    out_headers = {"Content-Type": reply.get("ContentType") or "application/octet-stream",
                   "X-Sme-Latency-Ms": f"{latency_ms:.1f}"}
    if reply.get("InvokedProductionVariant"):
        out_headers["X-Sme-Variant"] = reply["InvokedProductionVariant"]
    return _raw(200, payload, out_headers)


def _body(event) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (ValueError, TypeError):
            raise ValueError("the body is marked base64 but does not decode") from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _error(exc: Exception) -> dict:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        LOG.exception("unexpected error calling the endpoint")
        return _reply(500, {"error": "internal error", "reason": type(exc).__name__})
    err = response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", ""))
    reason = response.get("OriginalMessage") or message or code
    LOG.warning("InvokeEndpoint failed: %s: %s", code, message)
    if code == "ModelError":
        return _reply(502, {"error": "model error", "reason": reason,
                            "model_status": response.get("OriginalStatusCode")})
    if code in ("ThrottlingException", "TooManyRequestsException"):
        return _reply(429, {"error": "throttled", "reason": message})
    if code in ("ServiceUnavailable", "ModelNotReadyException", "InternalDependencyException") or \
            (code == "ValidationError" and "not found" in message.lower()):
        return _reply(503, {"error": "endpoint unavailable", "reason": message})
    return _reply(502, {"error": "endpoint refused the request", "code": code, "reason": message})


def _reply(status: int, data: dict) -> dict:
    return _raw(status, json.dumps({k: v for k, v in data.items() if v is not None}).encode(),
                {"Content-Type": "application/json"})


def _raw(status: int, payload: bytes, headers: dict) -> dict:
    ctype = headers.get("Content-Type", "")
    if ctype.startswith(TEXT_TYPES):
        try:
            return {"statusCode": status, "headers": headers, "body": payload.decode("utf-8"),
                    "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"statusCode": status, "headers": headers, "body": base64.b64encode(payload).decode("ascii"),
            "isBase64Encoded": True}
