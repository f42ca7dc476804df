"""API Gateway's execute-api for the local AWS: a deployed REST API's Lambda-proxy routes, answered for real.

moto keeps REST APIs, keys and usage plans, but cannot run a Lambda proxy integration without Docker.
Here a request to

    {local AWS}/restapis/{api_id}/{stage}/_user_request_/{path}        (LocalStack's form of the URL)

goes the way API Gateway takes it (``answer``, a coroutine on the twin front's event loop):

- the stage must be deployed and the route (resource and method) must exist, else 403 "Missing
  Authentication Token", API Gateway's answer to an unknown route;
- a method that requires an API key needs an enabled ``x-api-key`` on a usage plan of this stage,
  else 403 "Forbidden"; the plan's throttle (a token bucket: rate and burst) and quota answer 429;
- the integration's Lambda function runs in a runtime process of its own (``sme.local.aws.lambda_environments``,
  reused like warm Lambda environments): its code from the function's zip, its handler, its environment
  variables, its timeout, and AWS calls pointed back at this server;
- the proxy reply (statusCode, headers, body, isBase64Encoded) becomes the response, decoded from base64
  when the API's binary media types say so; a function that raises gives 502 "Internal server error",
  one that outruns its timeout 502 as well, or 504 at API Gateway's own 29 s.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from sme.local.aws.lambda_environments import RUNTIMES

ROUTE = re.compile(r"^/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?$")
Reply = tuple[int, list, bytes]  # (HTTP status, headers, body)


def is_execute_api(path: str) -> bool:
    return path.startswith("/restapis/") and "/_user_request_" in path


@dataclass
class ApiCall:
    """One request to a deployed REST API, as the twin's front received it."""
    method: str
    path: str  # decoded, as /restapis/{id}/{stage}/_user_request_/...
    query: str  # as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    source_ip: str
    server_url: str  # the twin: where the function's own AWS calls go
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Served:
    """What API Gateway and Lambda publish as metrics about one request (``sme.local.aws.front_door_metrics``)."""
    account: str
    region: str
    api_name: str
    stage: str
    status: int
    latency_ms: float  # received to answered
    integration_ms: float | None  # the Lambda call, when the request got that far
    function: str | None
    function_error: bool


OBSERVERS: list[Callable[[Served], None]] = []  # called with each Served, on the front's event loop


async def answer(call: ApiCall) -> Reply:
    """API Gateway's answer to one call."""
    match = ROUTE.match(call.path)
    found = _find_api(match.group(1)) if match else None
    if match is None or found is None or match.group(2) not in found[1].stages:
        return _message(403, "Missing Authentication Token")  # no API, no stage: nothing to count it under
    backend, api = found
    stage = match.group(2)
    reply, ran = await _through(backend, api, match.group(1), stage, match.group(3) or "/", call)
    served = Served(backend.account_id, backend.region_name, api.name, stage, reply[0],
                    (time.perf_counter() - call.received) * 1000, ran[1] if ran else None,
                    ran[0] if ran else None, bool(ran and ran[2]))
    for observer in list(OBSERVERS):
        observer(served)
    return reply


async def _through(backend: Any, api: Any, api_id: str, stage: str, path: str,
             call: ApiCall) -> tuple[Reply, tuple[str, float, bool] | None]:
    """The reply, and (function name, its duration in ms, whether it failed) once a function ran."""
    route = _route(api, path, call.method.upper())
    if route is None:
        return _message(403, "Missing Authentication Token"), None
    resource, method = route
    api_key = call.headers.get("x-api-key")
    if method.api_key_required:
        verdict = USAGE.admit(backend, api_id, stage, api_key)
        if verdict:
            return _message(*verdict), None
    integration = method.method_integration
    if integration is None or integration.integration_type != "AWS_PROXY" or ":lambda:path/" not in (integration.uri or ""):
        return _message(500, "Internal server error"), None
    function_arn = integration.uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
    binary_types = list(getattr(api, "binaryMediaTypes", None) or getattr(api, "binary_media_types", None) or [])
    event = _event(call, api_id, stage, path, resource.get_path(), binary_types)
    status, reply, ran = await RUNTIMES.invoke(function_arn, event, call.server_url)
    if status != 200:
        return _message(status, reply), ran
    return _proxy_reply(reply, binary_types, call.headers.get("accept", "")), ran


def _event(call: ApiCall, api_id: str, stage: str, path: str, resource_path: str, binary_types: list[str]) -> dict:
    """The Lambda proxy integration's event (payload format 1.0)."""
    headers, body, method = call.headers, call.body, call.method.upper()
    as_binary = bool(body) and (_matches(binary_types, headers.get("content-type", "")) or not _is_utf8(body))
    return {
        "resource": resource_path, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(parse_qsl(call.query, keep_blank_values=True)) or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": resource_path, "httpMethod": method, "stage": stage,
                           "apiId": api_id, "requestId": str(uuid.uuid4()), "path": f"/{stage}{path}",
                           "requestTimeEpoch": int(time.time() * 1000),
                           "identity": {"apiKey": headers.get("x-api-key"), "sourceIp": call.source_ip}},
        "body": (base64.b64encode(body).decode() if as_binary else body.decode("utf-8")) if body else None,
        "isBase64Encoded": as_binary,
    }


# -- moto's API Gateway -------------------------------------------------------------------------------

def _find_api(api_id: str) -> tuple[Any, Any] | None:
    from moto.apigateway.models import apigateway_backends

    for regions in list(apigateway_backends.values()):
        for backend in list(regions.values()):
            api = backend.apis.get(api_id)
            if api is not None:
                return backend, api
    return None


def _route(api: Any, path: str, method: str) -> tuple[Any, Any] | None:
    """The resource whose path template matches (literal segments, {param}, a trailing {proxy+}) and its method."""
    want = [s for s in path.split("/") if s]
    best = None
    for resource in list(api.resources.values()):
        template = [s for s in resource.get_path().split("/") if s]
        if not _template_matches(template, want):
            continue
        found = resource.resource_methods.get(method) or resource.resource_methods.get("ANY")
        literal = sum(1 for s in template if not s.startswith("{"))
        if found is not None and (best is None or literal > best[0]):
            best = (literal, resource, found)
    return (best[1], best[2]) if best else None


def _template_matches(template: list[str], want: list[str]) -> bool:
    if template and template[-1].startswith("{") and template[-1].endswith("+}"):
        return len(want) >= len(template) and _template_matches(template[:-1], want[:len(template) - 1])
    if len(template) != len(want):
        return False
    return all(t == w or (t.startswith("{") and t.endswith("}")) for t, w in zip(template, want))


class UsagePlans:
    """API keys, throttles and quotas of the usage plans, as API Gateway enforces them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # injected by tests, to check the token bucket without sleeping
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], list[float]] = {}  # (plan, key) -> [tokens, last refill]
        self._used: dict[tuple[str, str, str], int] = {}  # (plan, key, period) -> requests

    def admit(self, backend: Any, api_id: str, stage: str, value: str | None) -> tuple[int, str] | None:
        """None to let the request through, else (status, message)."""
        key = next((k for k in list(backend.keys.values()) if value and k.value == value), None)
        if key is None or not key.enabled:
            return 403, "Forbidden"
        for plan in list(backend.usage_plans.values()):
            on_stage = any(s.get("apiId") == api_id and s.get("stage") == stage for s in plan.api_stages)
            if on_stage and key.id in backend.usage_plan_keys.get(plan.id, {}):
                return self._charge(plan, key.id)
        return 403, "Forbidden"

    def _charge(self, plan: Any, key_id: str) -> tuple[int, str] | None:
        now = self._clock()
        with self._lock:
            rate = float(plan.throttle.get("rateLimit") or 0)
            burst = float(plan.throttle.get("burstLimit") or 0) or max(rate, 1.0)
            if rate > 0:
                tokens, last = self._buckets.get((plan.id, key_id), [burst, now])
                tokens = min(burst, tokens + (now - last) * rate)
                if tokens < 1.0:
                    self._buckets[(plan.id, key_id)] = [tokens, now]
                    return 429, "Too Many Requests"
                self._buckets[(plan.id, key_id)] = [tokens - 1.0, now]
            limit = int(plan.quota.get("limit") or 0)
            if limit:
                period = (plan.id, key_id, _period(str(plan.quota.get("period", "MONTH"))))
                if self._used.get(period, 0) >= limit:
                    return 429, "Limit Exceeded"
                self._used[period] = self._used.get(period, 0) + 1
        return None


def _period(kind: str) -> str:
    t = time.gmtime()
    if kind == "DAY":
        return time.strftime("%Y-%m-%d", t)
    if kind == "WEEK":
        return time.strftime("%G-W%V", t)
    return time.strftime("%Y-%m", t)


USAGE = UsagePlans()


def reset() -> None:
    """Stop every runtime process and forget throttle and quota counts (moto's reset, or the server's stop)."""
    global USAGE
    RUNTIMES.stop()
    USAGE = UsagePlans()


# -- HTTP -----------------------------------------------------------------------------------------------

def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _matches(patterns: list[str], content_type: str) -> bool:
    if "*/*" in patterns or "*~1*" in patterns:  # everything is binary, whatever (if anything) it is called
        return True
    ctype = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(ctype, p.replace("~1", "/").lower()) for p in patterns) if ctype else False


def _proxy_reply(reply: Any, binary_types: list[str], accept: str) -> Reply:
    if not isinstance(reply, dict) or not isinstance(reply.get("statusCode"), int):
        return _message(502, "Internal server error")  # API Gateway: a malformed proxy response
    headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
    body = reply.get("body") or ""
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if reply.get("isBase64Encoded") and (_matches(binary_types, accept) or _matches(binary_types, ctype)):
        data = base64.b64decode(body)
    else:
        data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode()
    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
    return reply["statusCode"], [*headers.items(), ("x-amzn-RequestId", str(uuid.uuid4()))], data


def _message(status: int, message: str) -> Reply:
    body = json.dumps({"message": message}).encode()
    error_type = {403: "ForbiddenException" if message == "Forbidden" else "MissingAuthenticationTokenException",
                  429: "TooManyRequestsException" if message != "Limit Exceeded" else "LimitExceededException",
                  502: "InternalServerErrorException", 504: "IntegrationTimeout"}.get(status, "InternalServerError")
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)], body
