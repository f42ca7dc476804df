"""API Gateway (REST, Lambda proxy integration) -> SageMaker InvokeEndpoint.

Deployed by sme as the front door's function; it uses only the standard library and botocore (both in the
Lambda Python runtime). The endpoint comes from ``SME_ENDPOINT_NAME``; a request without a Content-Type
gets ``SME_CONTENT_TYPE``. Errors are mapped to status codes with a one-line reason, never a stack trace:

    400  empty or undecodable body          405  not a POST
    502  the model raised an error (ModelError), or SageMaker refused the request
    503  the endpoint is missing, not ready or overloaded      429  throttled
    500  anything else (logged with its traceback, answered without it)

The call itself is a boto3 client's without its per-call machinery (a third of the CPU, which is billed as
Lambda Duration): botocore resolves the endpoint, region, credentials, retry policy and timeouts once per
environment; each call is signed by botocore's SigV4 signer and sent over one kept-alive connection that
lives as long as the environment. Anything but a 2xx answer goes through botocore's own parser and retry
handler, so errors, retries and exceptions are exactly a boto3 client's.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import select
import socket
import time
from urllib.parse import urlsplit

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)
_CLIENT = None
USER_AGENT = "sme-front-door"
TEXT_TYPES = ("text/", "application/json", "application/jsonlines", "application/x-ndjson", "application/xml")


def _client():
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = SageMakerRuntime()
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


class SageMakerRuntime:
    """``invoke_endpoint`` with a boto3 client's arguments, answer and exceptions, at a third of its CPU."""

    OPERATION = "InvokeEndpoint"

    def __init__(self, session=None):
        import botocore.session
        from botocore.config import Config

        self._session = session or botocore.session.get_session()
        # The client is made once, for what it resolves (endpoint, region, retry handler, error classes);
        # calls do not go through it.
        self._boto = self._session.create_client("sagemaker-runtime", config=Config(
            retries={"mode": "standard", "max_attempts": 2}, read_timeout=60))
        meta = self._boto.meta
        self._operation = meta.service_model.operation_model(self.OPERATION)
        self._event = f"{meta.service_model.service_id.hyphenize()}.{self.OPERATION}"
        self._url, self._region = meta.endpoint_url.rstrip("/"), meta.region_name
        self._headers_in = _header_members(self._operation.input_shape)
        self._headers_out = {name: header.lower() for name, header in
                             _header_members(self._operation.output_shape).items()}
        self._credentials = _Credentials(self._session)
        self._connection = Connection(self._url, meta.config.connect_timeout, meta.config.read_timeout,
                                      self._session.get_config_variable("ca_bundle"))

    def invoke_endpoint(self, **params) -> dict:
        context: dict = {}
        attempt, answer, failure = 0, None, None
        while True:
            attempt += 1
            answer, failure = None, None
            try:
                url, body, headers = self.signed(params)
                answer = self._answer(url, *self._connection.post(url, body, headers))
            except Exception as exc:  # noqa: BLE001 - botocore's retry policy decides, as in the client
                failure = exc
            if not self._retry(attempt, answer, failure, context):
                break
        if failure is not None:
            raise failure
        response, parsed = answer
        if "ResponseMetadata" in parsed:  # retries, not attempts: botocore's endpoint counts so
            parsed["ResponseMetadata"]["RetryAttempts"] = attempt - 1
        self._boto.meta.events.emit(f"after-call.{self._event}", http_response=response, parsed=parsed,
                                    model=self._operation, context=context)
        if response.status_code >= 300:
            raise self._boto.exceptions.from_code(parsed["Error"].get("Code"))(parsed, self.OPERATION)
        return parsed

    def signed(self, params: dict) -> tuple[str, bytes, dict]:
        """The request botocore would send for these arguments: its URL, body and headers."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.utils import percent_encode

        url = f"{self._url}/endpoints/{percent_encode(params['EndpointName'])}/invocations"
        body = params["Body"].encode("utf-8") if isinstance(params["Body"], str) else bytes(params["Body"])
        request = AWSRequest("POST", url, data=body, headers={
            header: str(params[name]) for name, header in self._headers_in.items() if params.get(name) is not None})
        SigV4Auth(self._credentials.frozen(), self._operation.service_model.signing_name,
                  self._region).add_auth(request)
        return url, body, dict(request.headers.items())

    def _answer(self, url: str, status: int, headers, content: bytes) -> tuple:
        """botocore's response, and what boto3 would have returned for it (its error parse for anything but
        2xx); a 2xx is read here: the output shape's headers and the body. ``headers`` is http.client's
        HTTPMessage, which botocore's HTTPHeaders only extends with constructors."""
        from botocore.awsrequest import AWSResponse

        if status >= 300:
            from botocore.awsrequest import HTTPHeaders

            response = AWSResponse(url, status, HTTPHeaders.from_pairs(headers.items()), _Bytes(content))
            return response, self._error(response)
        from botocore.response import StreamingBody

        named = {name.lower(): value for name, value in headers.items()}
        parsed = {name: named[header] for name, header in self._headers_out.items() if header in named}
        parsed["Body"] = StreamingBody(_Bytes(content), len(content))
        parsed["ResponseMetadata"] = {"RequestId": named.get("x-amzn-requestid", ""), "HTTPStatusCode": status,
                                      "HTTPHeaders": named}
        return AWSResponse(url, status, headers, _Bytes(content)), parsed

    def _error(self, response) -> dict:
        """botocore's endpoint: the protocol's error parse, then the modeled error's fields (OriginalMessage...)."""
        from botocore.parsers import create_parser

        parser = create_parser(self._operation.service_model.protocol)
        raw = {"headers": response.headers, "status_code": response.status_code, "body": response.content,
               "context": {"operation_name": self.OPERATION}}
        parsed = parser.parse(raw, self._operation.output_shape)
        shape = self._operation.service_model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
        if shape is not None:
            parsed.update(parser.parse(raw, shape))
        return parsed

    def _retry(self, attempt: int, answer, failure, context: dict) -> bool:
        if answer is not None and answer[0].status_code < 300:
            return False  # the retry handler never retries a 2xx: spare every call the event it would ask
        from botocore.hooks import first_non_none_response

        delays = self._boto.meta.events.emit(f"needs-retry.{self._event}", response=answer, endpoint=None,
                                             operation=self._operation, attempts=attempt,
                                             caught_exception=failure, request_dict={"context": context})
        delay = first_non_none_response(delays)
        if delay is None or delay is False:
            return False
        time.sleep(delay)
        return True


def _header_members(shape) -> dict[str, str]:
    return {name: member.serialization["name"] for name, member in shape.members.items()
            if member.serialization.get("location") == "header"}


class _Bytes:
    """A read() over bytes already received (what StreamingBody wraps)."""

    def __init__(self, content: bytes):
        self._content = content

    def read(self, amt=None) -> bytes:
        if amt is None or amt >= len(self._content):
            out, self._content = self._content, b""
        else:
            out, self._content = self._content[:amt], self._content[amt:]
        return out

    def stream(self):
        yield self.read()


class _Credentials:
    """The session's credentials; resolved again when the environment's keys change (rotated ones)."""

    KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

    def __init__(self, session):
        self._session, self._seen, self._resolved = session, None, None

    def frozen(self):
        seen = tuple(os.environ.get(key) for key in self.KEYS)
        if seen != self._seen or self._resolved is None:
            import botocore.session
            from botocore.exceptions import NoCredentialsError

            fresh = botocore.session.get_session() if self._seen is not None else self._session
            self._resolved, self._seen = fresh.get_credentials(), seen
            if self._resolved is None:
                raise NoCredentialsError()
        return self._resolved.get_frozen_credentials()


class Connection:
    """One kept-alive HTTP(S) connection to the runtime, reused by every call of the environment (Lambda runs
    one call at a time in it). Socket failures become botocore's exceptions, which its retry policy knows."""

    def __init__(self, url: str, connect_timeout: float, read_timeout: float, ca_bundle=None):
        from botocore.utils import get_environ_proxies

        parts = urlsplit(url)
        self._read_timeout = read_timeout
        self._host, self._port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        # The Host SigV4 signed: the URL's, without a default port.
        self._host_header = parts.netloc if parts.port not in (None, {"https": 443, "http": 80}[parts.scheme]) \
            else parts.hostname
        proxy = get_environ_proxies(url).get(parts.scheme)
        self._proxy = urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else None
        # Through a proxy, plain HTTP names the whole URL in the request line; HTTPS tunnels (CONNECT).
        self._absolute = self._proxy is not None and parts.scheme == "http"
        to = self._proxy or parts
        address = (to.hostname, to.port or (443 if to.scheme == "https" else 80))
        if parts.scheme == "https":
            import ssl

            from botocore.httpsession import get_cert_path

            context = ssl.create_default_context(cafile=get_cert_path(ca_bundle or True))
            self._http = http.client.HTTPSConnection(*address, timeout=connect_timeout, context=context)
        else:
            self._http = http.client.HTTPConnection(*address, timeout=connect_timeout)
        if self._proxy is not None and not self._absolute:
            self._http.set_tunnel(self._host, self._port, headers=_proxy_auth(self._proxy))

    def post(self, url: str, body: bytes, headers: dict):
        """Send one request; its status, headers (an HTTPMessage) and body. The request goes out in one write:
        http.client writes the head and the body separately, two segments and two wake-ups of the server."""
        from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

        sock = self._open(url)
        if self._absolute:
            headers = {**headers, **_proxy_auth(self._proxy)}
        if any("\r" in value or "\n" in value for value in headers.values()):
            raise ValueError("a header value holds a line break")  # as http.client refuses it
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        target = url if self._absolute else url[url.index("/", url.index("//") + 2):]
        request = (f"POST {target} HTTP/1.1\r\nHost: {self._host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
                   f"{lines}Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        try:
            sock.sendall(request)
            reply = http.client.HTTPResponse(sock, method="POST")
            reply.begin()
            content = reply.read()
        except socket.timeout as exc:
            self._http.close()
            raise ReadTimeoutError(endpoint_url=url, error=exc) from None
        except (OSError, http.client.HTTPException) as exc:
            self._http.close()
            raise ConnectionClosedError(endpoint_url=url, error=exc) from None
        if reply.will_close:
            self._http.close()
        return reply.status, reply.msg, content

    def _open(self, url: str) -> socket.socket:
        """The connection's socket, connected now if it was not; a kept connection that the server has closed
        since reads as readable: connect again."""
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

        sock = self._http.sock
        if sock is not None:
            waiting = select.poll()  # not select(): it fails on descriptors above 1023
            waiting.register(sock, select.POLLIN)
            if waiting.poll(0):
                self._http.close()
        if self._http.sock is not None:
            return self._http.sock
        try:
            self._http.connect()
        except socket.timeout as exc:
            self._http.close()
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from None
        except OSError as exc:
            self._http.close()
            raise EndpointConnectionError(endpoint_url=url, error=exc) from None
        self._http.sock.settimeout(self._read_timeout)
        return self._http.sock


def _proxy_auth(proxy) -> dict:
    if not proxy.username:
        return {}
    from urllib.parse import unquote

    token = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}
