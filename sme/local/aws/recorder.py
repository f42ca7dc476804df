"""The twin's call recorder: a WSGI middleware in front of moto that sees every AWS call.

It records each call as a ``Call`` (service, operation, mutating?) for tests that count API calls (the last
CALLS_KEPT), lets a ``fault`` hook answer a call with an error instead of moto (throttling, 500s), calls an
``after`` hook once moto has carried a call out (crash tests kill the caller there), and refuses what a web
page could send (``refusal``: an Origin header, a CORS preflight, a Host that is not loopback). The fast
front (``sme.local.aws.front``) uses the same refusal and error replies for the data plane.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from sme.local.aws import execute_api
from sme.local.aws.wsgi import read_body

MUTATING_PREFIXES = ("Create", "Update", "Delete", "Put", "Register", "Deregister", "Attach", "Detach",
                     "Tag", "Untag", "Upload", "Start", "Stop", "Modify", "Add", "Remove", "Invoke",
                     "Set", "Enable", "Disable", "Import", "Copy", "Complete", "Abort", "Publish")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/")
_RPC_V2 = re.compile(r"/service/[^/]+/operation/([A-Za-z]+)")
CALLS_KEPT = 20_000  # a long demo makes millions of calls: tests look at the last few hundred


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    method: str
    path: str

    @property
    def mutating(self) -> bool:
        if self.service == "execute-api":
            return False
        if self.operation.startswith(("Get", "List", "Describe", "Head", "Search", "Batch")) \
                and not self.operation.startswith("BatchDelete"):
            return False
        named = " " not in self.operation  # else "METHOD /path": a REST call the recorder could not name
        if named and self.operation[:1].isupper() and self.method == "POST":
            return self.operation.startswith(MUTATING_PREFIXES)
        return self.method in ("PUT", "POST", "DELETE", "PATCH")


Fault = Callable[[Call], "tuple[int, str, str] | None"]  # -> (http status, error code, message) or None


class Recorder:
    """WSGI middleware: record calls, inject faults, then hand over to moto."""

    def __init__(self, app: Any):
        self.app = app
        self.calls: deque[Call] = deque(maxlen=CALLS_KEPT)
        self.fault: Fault | None = None
        # called once moto has carried a call out, before its reply leaves: crash tests kill the caller here
        self.after: Callable[[Call], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        refused = refuse_browsers(environ)
        if refused:
            return _forbidden(start_response, refused)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        call = self._identify(environ)
        injected = self.record(call)
        if injected:
            status, headers, body = error_reply(bool(environ.get("HTTP_X_AMZ_TARGET")), *injected)
            start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
            return [body]
        reply = self.app(environ, start_response)
        after = self.after
        if after:
            reply = list(reply)  # moto has answered in full
            after(call)
        return reply

    def record(self, call: Call, with_fault: bool = True) -> "tuple[int, str, str] | None":
        """Keep the call; the fault to answer it with, if the fault hook wants one."""
        with self._lock:
            self.calls.append(call)
            fault = self.fault if with_fault else None
        return fault(call) if fault else None

    def _identify(self, environ: dict) -> Call:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = _SCOPE.search(auth)
        service = scope.group(2) if scope else ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.rsplit(".", 1)[-1] if target else ""
        if not operation:
            match = _RPC_V2.search(path)
            operation = match.group(1) if match else ""
        if not operation and method == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            body = read_body(environ)
            operation = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if not operation:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            operation = query.get("Action", [""])[0]
        return Call(service, operation or f"{method} {path}", method, path)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.fault = None
            self.after = None

    def mutating(self, service: str | None = None) -> list[Call]:
        return [c for c in list(self.calls) if c.mutating and (service is None or c.service == service)]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def refuse_browsers(environ: dict) -> str | None:
    """Why a request must be refused, or None (see ``refusal``)."""
    return refusal(environ.get("REQUEST_METHOD", ""), environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST", ""))


def refusal(method: str, origin: str | None, host_header: str) -> str | None:
    """Why a request must be refused, or None. The twin runs models' code as the user, so a web page in the
    user's browser must not reach it: no cross-origin request or CORS preflight (moto itself answers any
    Origin with permissive CORS), and no Host that is not loopback (DNS rebinding). AWS SDKs and CLIs send
    no Origin header. Both the front and the recorder behind it apply this."""
    if origin is not None or method == "OPTIONS":
        return f"cross-origin request refused (Origin: {origin or '-'}): the local AWS serves programs, not web pages"
    host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header.split("]")[0] + "]"
    if host and not (host in LOOPBACK_HOSTS or host.endswith(".localhost")):
        return f"request for host {host} refused: the local AWS answers only on loopback names"
    return None


def _forbidden(start_response: Callable, message: str) -> list[bytes]:
    body = message.encode()
    start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


_REASONS = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_reply(json_protocol: bool, status: int, code: str, message: str) -> tuple[int, list, bytes]:
    """An injected fault as AWS shapes errors: JSON for X-Amz-Target calls, XML for the others."""
    if json_protocol:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>sme-fault</RequestId></ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-ErrorType", code)]
    return status, headers + [("Content-Length", str(len(body)))], body
