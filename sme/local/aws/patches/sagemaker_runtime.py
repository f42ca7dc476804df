"""SageMaker Runtime: InvokeEndpoint answered by the endpoint's real model runtimes, as AWS answers it.

AWS behaviour reproduced (the InvokeEndpoint API reference; error shapes from botocore's service model):

- a success answers 200 with the model's body and Content-Type and ``x-Amzn-Invoked-Production-Variant``;
- an endpoint that does not exist answers 400 ``ValidationError`` "Endpoint NAME of account ACCOUNT not
  found.";
- a container that answers 4xx or 5xx gives 424 ``ModelError`` carrying ``OriginalStatusCode``,
  ``OriginalMessage`` and ``LogStreamArn``, its message "Received client error (4xx) from primary with
  message ..." (or "server error" for a 5xx);
- the body reaches the model as the bytes sent, whatever their Content-Type (a form-urlencoded one
  included) or encoding;
- a body over the 6 MB real-time limit (6291456 bytes, the Body's maximum in the service model) is refused
  with HTTP 413 before it reaches the model, as AWS refuses it ("HTTP content length exceeded ...");
- a request without a Signature Version 4 ``Authorization`` answers 403 ``MissingAuthenticationTokenException``.

moto 5.2 answers canned bodies for any endpoint name, takes a handler's status only from a ``status``
header, parses a form-urlencoded body as a form and decodes every body as UTF-8 (HTML 500 on other
bytes). So while a ``LocalAws`` runs, the twin answers this operation itself, in front of moto
(``handle``, called by the server's call recorder); without one, moto's canned replies stand.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable

from sme.local.aws.wsgi import read_body

ROUTE = re.compile(r"^/endpoints/([^/]+)/invocations$")
MAX_BODY_BYTES = 6291456
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/")
_ENDPOINTS: Any = None  # the LocalEndpoints answering InvokeEndpoint, or None: moto's canned replies


def forward_to_runtimes(endpoints: Any) -> None:
    """InvokeEndpoint goes to these endpoints' runtimes (a ``LocalEndpoints``) instead of moto."""
    global _ENDPOINTS
    _ENDPOINTS = endpoints


def stop_forwarding(endpoints: Any) -> None:
    global _ENDPOINTS
    if _ENDPOINTS is endpoints:
        _ENDPOINTS = None


def is_invocation(environ: dict) -> bool:
    return _ENDPOINTS is not None and environ.get("REQUEST_METHOD") == "POST" \
        and ROUTE.match(environ.get("PATH_INFO", "")) is not None


def handle(environ: dict, start_response: Callable) -> Iterable[bytes]:
    endpoints = _ENDPOINTS
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None:
        return _error(start_response, 403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = read_body(environ)
    if max(length, len(body)) > MAX_BODY_BYTES:
        return _error(start_response, 413, "", f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
    from moto.iam.models import get_account_id_from

    account, region = get_account_id_from(scope.group(1)), scope.group(2)
    name = ROUTE.match(environ["PATH_INFO"]).group(1)  # type: ignore[union-attr]
    try:
        status, data, headers, variant = endpoints.invoke(
            account, region, name, body, environ.get("CONTENT_TYPE", ""), environ.get("HTTP_ACCEPT", ""),
            environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"))
    except LookupError:
        return _error(start_response, 400, "ValidationError", f"Endpoint {name} of account {account} not found.")
    if status >= 400:
        return _model_error(start_response, status, data, account, region, name)
    start_response("200 OK", [("Content-Type", headers.get("content-type", "application/octet-stream")),
                              ("x-Amzn-Invoked-Production-Variant", variant),
                              ("Content-Length", str(len(data)))])
    return [data]


def _model_error(start_response: Callable, status: int, data: bytes, account: str, region: str,
                 name: str) -> list[bytes]:
    original = data.decode("utf-8", "replace")
    kind = "client" if status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{name}"
    message = (f'Received {kind} error ({status}) from primary with message "{original}". See '
               f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
               f"group={group} in account {account} for more information.")
    return _error(start_response, 424, "ModelError", message, OriginalStatusCode=status, OriginalMessage=original,
                  LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:{group}")


def _error(start_response: Callable, status: int, code: str, message: str, **fields: Any) -> list[bytes]:
    reasons = {400: "Bad Request", 403: "Forbidden", 413: "Request Entity Too Large", 424: "Failed Dependency"}
    # ModelError's body spells its members as the service model does (Message, OriginalStatusCode, ...)
    payload = json.dumps({"Message" if fields else "message": message, **fields}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    if code:
        headers.append(("x-amzn-ErrorType", code))
    start_response(f"{status} {reasons[status]}", headers)
    return [payload]
