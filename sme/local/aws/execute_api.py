"""API Gateway's execute-api for the local AWS: a deployed REST API's Lambda-proxy routes, answered for real.

moto keeps REST APIs, keys and usage plans, but cannot run a Lambda proxy integration without Docker.
Here a request to

    {local AWS}/restapis/{api_id}/{stage}/_user_request_/{path}        (LocalStack's form of the URL)

goes the way API Gateway takes it:

- the stage must be deployed and the route (resource and method) must exist, else 403 "Missing
  Authentication Token", API Gateway's answer to an unknown route;
- a method that requires an API key needs an enabled ``x-api-key`` on a usage plan of this stage,
  else 403 "Forbidden"; the plan's throttle (a token bucket: rate and burst) and quota answer 429;
- the integration's Lambda function runs in a runtime process of its own (``sme.local.aws.lambda_runtime``,
  up to MAX_ENVIRONMENTS per function, reused like warm Lambda environments): its code from the
  function's zip, its handler, its environment variables, its timeout, and AWS calls pointed back at
  this server;
- the proxy reply (statusCode, headers, body, isBase64Encoded) becomes the response, decoded from base64
  when the API's binary media types say so; a function that raises gives 502 "Internal server error",
  one that outruns its timeout 502 as well, or 504 at API Gateway's own 29 s.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from typing import Any, Callable, Iterable

from sme.local.aws.wsgi import read_body

ROUTE = re.compile(r"^/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?$")
MAX_ENVIRONMENTS = 8
INTEGRATION_TIMEOUT_S = 29.0


def is_execute_api(path: str) -> bool:
    return path.startswith("/restapis/") and "/_user_request_" in path


def handle(environ: dict, start_response: Callable) -> Iterable[bytes]:
    match = ROUTE.match(environ.get("PATH_INFO", ""))
    if not match:
        return _message(start_response, 403, "Missing Authentication Token")
    api_id, stage, path = match.group(1), match.group(2), match.group(3) or "/"
    found = _find_api(api_id)
    if found is None or stage not in found[1].stages:
        return _message(start_response, 403, "Missing Authentication Token")
    backend, api = found
    method_name = environ.get("REQUEST_METHOD", "GET").upper()
    route = _route(api, path, method_name)
    if route is None:
        return _message(start_response, 403, "Missing Authentication Token")
    resource, method = route
    headers = _headers(environ)
    api_key = headers.get("x-api-key")
    if method.api_key_required:
        verdict = USAGE.admit(backend, api_id, stage, api_key)
        if verdict:
            return _message(start_response, *verdict)
    integration = method.method_integration
    if integration is None or integration.integration_type != "AWS_PROXY" or ":lambda:path/" not in (integration.uri or ""):
        return _message(start_response, 500, "Internal server error")
    function_arn = integration.uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
    body = read_body(environ)
    binary_types = list(getattr(api, "binaryMediaTypes", None) or getattr(api, "binary_media_types", None) or [])
    as_binary = bool(body) and (_matches(binary_types, headers.get("content-type", "")) or not _is_utf8(body))
    event = {
        "resource": resource.get_path(), "path": path, "httpMethod": method_name,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": _query(environ) or None, "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": resource.get_path(), "httpMethod": method_name, "stage": stage,
                           "apiId": api_id, "requestId": str(uuid.uuid4()), "path": f"/{stage}{path}",
                           "requestTimeEpoch": int(time.time() * 1000),
                           "identity": {"apiKey": api_key, "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1")}},
        "body": (base64.b64encode(body).decode() if as_binary else body.decode("utf-8")) if body else None,
        "isBase64Encoded": as_binary,
    }
    server_url = f"http://{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}"
    status, reply = RUNTIMES.invoke(function_arn, event, server_url)
    if status != 200:
        return _message(start_response, status, reply)
    return _proxy_reply(start_response, reply, binary_types, headers.get("accept", ""))


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


# -- Lambda runtimes ----------------------------------------------------------------------------------

class _Environment:
    def __init__(self, proc: subprocess.Popen, version: str):
        self.proc, self.version = proc, version

    def call(self, event: dict, timeout_s: float) -> dict | None:
        """The runtime's reply, or None when it did not answer within timeout_s (then it is killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(event) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.kill()
            return None
        return json.loads(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Runtimes:
    """Warm runtime processes per function, started on demand, at most MAX_ENVIRONMENTS each."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: dict[str, list[_Environment]] = {}
        self._busy: dict[str, int] = {}
        self._code_dirs: dict[str, str] = {}
        self._root: str | None = None

    def invoke(self, function_arn: str, event: dict, server_url: str) -> tuple[int, Any]:
        fn = _find_function(function_arn)
        if fn is None:
            return 500, "Internal server error"
        version = f"{fn.code_sha_256}:{json.dumps(fn.environment_vars, sort_keys=True)}:{fn.handler}"
        env = self._acquire(fn, version, server_url)
        limit = min(float(fn.timeout or 3), INTEGRATION_TIMEOUT_S)
        try:
            reply = env.call(event, limit)
        except (OSError, ValueError):  # the runtime died mid-call, or answered garbage
            reply = None
            env.kill()
        finally:
            self._release(fn.function_arn, env)
        if reply is None:
            return (504, "Endpoint request timed out") if limit >= INTEGRATION_TIMEOUT_S else (502, "Internal server error")
        if "error" in reply:
            return 502, "Internal server error"
        return 200, reply.get("result")

    def _acquire(self, fn: Any, version: str, server_url: str) -> _Environment:
        arn = fn.function_arn
        with self._lock:
            while True:
                idle = self._idle.setdefault(arn, [])
                while idle:
                    env = idle.pop()
                    if env.version == version and env.proc.poll() is None:
                        self._busy[arn] = self._busy.get(arn, 0) + 1
                        return env
                    env.kill()  # new code or configuration: a cold start, as in Lambda
                if self._busy.get(arn, 0) < MAX_ENVIRONMENTS:
                    self._busy[arn] = self._busy.get(arn, 0) + 1
                    break
                self._lock.wait()
        try:
            return _Environment(self._start(fn, server_url), version)
        except Exception:
            with self._lock:
                self._busy[arn] -= 1
                self._lock.notify()
            raise

    def _release(self, arn: str, env: _Environment) -> None:
        with self._lock:
            self._busy[arn] -= 1
            if env.proc.poll() is None:
                self._idle.setdefault(arn, []).append(env)
            self._lock.notify()

    def _start(self, fn: Any, server_url: str) -> subprocess.Popen:
        code_dir = self._code_dir(fn)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
        env.update({"AWS_ENDPOINT_URL": server_url, "AWS_ACCESS_KEY_ID": "sme-local-lambda",
                    "AWS_SECRET_ACCESS_KEY": "sme-local-lambda", "AWS_REGION": fn.region,
                    "AWS_DEFAULT_REGION": fn.region, "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size), "PYTHONUNBUFFERED": "1"})
        return subprocess.Popen([sys.executable, "-m", "sme.local.aws.lambda_runtime", code_dir, fn.handler or ""],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)

    def _code_dir(self, fn: Any) -> str:
        with self._lock:
            if fn.code_sha_256 not in self._code_dirs:
                if self._root is None:
                    self._root = tempfile.mkdtemp(prefix="sme-local-lambda-")
                target = os.path.join(self._root, str(len(self._code_dirs)))
                with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as zf:
                    zf.extractall(target)
                self._code_dirs[fn.code_sha_256] = target
            return self._code_dirs[fn.code_sha_256]

    def stop(self) -> None:
        with self._lock:
            for envs in self._idle.values():
                for env in envs:
                    env.kill()
            self._idle.clear()
            if self._root:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root, self._code_dirs = None, {}


def _find_function(arn: str) -> Any:
    from moto.awslambda.models import lambda_backends

    parts = arn.split(":")
    if len(parts) < 7:
        return None
    try:
        return lambda_backends[parts[4]][parts[3]].get_function(parts[6])
    except Exception:  # noqa: BLE001 - a missing function is API Gateway's 500, not ours
        return None


RUNTIMES = Runtimes()


def reset() -> None:
    """Stop every runtime process and forget throttle and quota counts (moto's reset, or the server's stop)."""
    global USAGE
    RUNTIMES.stop()
    USAGE = UsagePlans()


# -- HTTP -----------------------------------------------------------------------------------------------

def _headers(environ: dict) -> dict[str, str]:
    out = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["content-length"] = environ["CONTENT_LENGTH"]
    return out


def _query(environ: dict) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


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


def _proxy_reply(start_response: Callable, reply: Any, binary_types: list[str], accept: str) -> list[bytes]:
    if not isinstance(reply, dict) or not isinstance(reply.get("statusCode"), int):
        return _message(start_response, 502, "Internal server error")  # API Gateway: a malformed proxy response
    headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
    body = reply.get("body") or ""
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if reply.get("isBase64Encoded") and (_matches(binary_types, accept) or _matches(binary_types, ctype)):
        data = base64.b64decode(body)
    else:
        data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode()
    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
    start_response(f"{reply['statusCode']} {_REASONS.get(reply['statusCode'], 'Status')}",
                   [*headers.items(), ("Content-Length", str(len(data))),
                    ("x-amzn-RequestId", str(uuid.uuid4()))])
    return [data]


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _message(start_response: Callable, status: int, message: str) -> list[bytes]:
    body = json.dumps({"message": message}).encode()
    error_type = {403: "ForbiddenException" if message == "Forbidden" else "MissingAuthenticationTokenException",
                  429: "TooManyRequestsException" if message != "Limit Exceeded" else "LimitExceededException",
                  502: "InternalServerErrorException", 504: "IntegrationTimeout"}.get(status, "InternalServerError")
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("x-amzn-ErrorType", error_type)])
    return [body]
