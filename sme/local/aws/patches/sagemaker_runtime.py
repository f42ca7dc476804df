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
- a request without a Signature Version 4 ``Authorization`` answers 403 ``MissingAuthenticationTokenException``;
- a serverless endpoint's request takes a runtime of its own, started for it when none is idle, or is
  throttled beyond MaxConcurrency (400 ``ThrottlingException``): ``sme.local.aws.serverless``.

- a container that does not answer within 60 s (or cannot be reached) gives 424 ``ModelError`` "Received
  server error (0) from primary with message "Your invocation timed out ..."";
- ``ModelLatency`` is the time the container took as the service sees it (sending the request, the
  inference, fetching the reply); ``OverheadLatency`` is the rest of the time from receiving the request
  to answering it: what the service itself added (both recorded per variant by the endpoints' observers).

moto 5.2 answers canned bodies for any endpoint name, takes a handler's status only from a ``status``
header, parses a form-urlencoded body as a form and decodes every body as UTF-8 (HTML 500 on other
bytes). So while a ``LocalAws`` runs, the twin's front (``sme.local.aws.front``) answers this operation
itself with ``answer``, on its event loop; without one, the front relays it to moto's canned replies.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Awaitable, Callable

ROUTE = re.compile(r"^/endpoints/([^/]+)/invocations$")
MAX_BODY_BYTES = 6291456
MODEL_TIMEOUT_S = 60.0  # InvokeEndpoint's limit for a real-time container's reply
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/")
_ENDPOINTS: Any = None  # the LocalEndpoints answering InvokeEndpoint, or None: moto's canned replies
_ACCOUNTS: dict[str, str] = {}  # access key -> account (moto's lookup, cached: it runs on every call)

Reply = tuple[int, list, bytes]  # (HTTP status, headers, body)
# (port, body, content type, accept, timeout) -> (status, body, content type); raises OSError or TimeoutError
Post = Callable[[int, bytes, str, str, float], Awaitable[tuple[int, bytes, str]]]


def forward_to_runtimes(endpoints: Any) -> None:
    """InvokeEndpoint goes to these endpoints' runtimes (a ``LocalEndpoints``) instead of moto."""
    global _ENDPOINTS
    _ENDPOINTS = endpoints


def stop_forwarding(endpoints: Any) -> None:
    global _ENDPOINTS
    if _ENDPOINTS is endpoints:
        _ENDPOINTS = None


def forwarding() -> Any:
    """The LocalEndpoints answering the data plane, or None while moto's canned replies do."""
    return _ENDPOINTS


def is_invocation(method: str, path: str) -> bool:
    return _ENDPOINTS is not None and method == "POST" and ROUTE.match(path) is not None


async def answer(path: str, headers: Any, read_body: Callable[[], Awaitable[bytes]], post: Post,
                 received: float) -> Reply:
    """InvokeEndpoint as AWS answers it; ``received`` is when the request arrived (time.perf_counter())."""
    endpoints = _ENDPOINTS
    scope = _SCOPE.search(headers.get("Authorization", ""))
    if scope is None or endpoints is None:
        return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:  # refused before it is read, as AWS does
        return _too_large()
    body = await read_body()
    if len(body) > MAX_BODY_BYTES:
        return _too_large()
    account, region = _account(scope.group(1)), scope.group(2)
    name = ROUTE.match(path).group(1)  # type: ignore[union-attr]
    serverless = endpoints.serverless_variant(account, region, name)
    if serverless is not None:
        return await _serverless(*serverless, endpoints, headers, body, post, received)
    try:
        ep, variant, instance = endpoints.pick(account, region, name, headers.get("X-Amzn-SageMaker-Target-Variant"))
    except LookupError:
        return _error(400, "ValidationError", f"Endpoint {name} of account {account} not found.")
    return await _forward(endpoints, ep, variant, instance, headers, body, post, received)


async def _serverless(ep: Any, serverless: Any, endpoints: Any, headers: Any, body: bytes, post: Post,
                      received: float) -> Reply:
    """A serverless variant: a runtime of its own for this request (started now if none is idle), or a
    throttle beyond MaxConcurrency (see ``sme.local.aws.serverless``)."""
    from sme.local.aws.serverless import Throttled

    try:
        runtime, _ = await serverless.acquire()
    except Throttled:
        return _error(400, "ThrottlingException", None)
    except (OSError, RuntimeError) as exc:  # the runtime could not start: the container's failure
        return _model_error(0, str(exc).encode(), ep.account, ep.region, ep.name)
    try:
        return await _forward(endpoints, ep, runtime.instance.variant, runtime.instance, headers, body, post, received)
    finally:
        serverless.release(runtime)


async def _forward(endpoints: Any, ep: Any, variant: str, instance: Any, headers: Any, body: bytes, post: Post,
                   received: float) -> Reply:
    """The request to one instance's runtime, its reply as InvokeEndpoint answers it, and the latencies observed."""
    account, region, name = ep.account, ep.region, ep.name
    sent = time.perf_counter()
    try:
        status, data, content_type = await post(instance.port, body, headers.get("Content-Type", ""),
                                                headers.get("Accept", ""), MODEL_TIMEOUT_S)
    except (OSError, TimeoutError):  # no reply: AWS's words for a container that did not answer in time
        status, data, content_type = 0, (b"Your invocation timed out while waiting for a response from container "
                                         b"primary."), ""
    model_s = time.perf_counter() - sent
    if 0 < status < 400:  # a 204 (an empty body) is a 200 with no body, as before
        reply: Reply = (200, [("Content-Type", content_type or "application/octet-stream"),
                              ("x-Amzn-Invoked-Production-Variant", variant)], data)
    else:
        reply = _model_error(status, data, account, region, name)
    overhead_s = time.perf_counter() - received - model_s
    endpoints.observe(ep, variant, instance, status if status else 500, model_s * 1e6, overhead_s * 1e6)
    return reply


def _account(access_key: str) -> str:
    account = _ACCOUNTS.get(access_key)
    if account is None:
        from moto.iam.models import get_account_id_from

        account = _ACCOUNTS[access_key] = get_account_id_from(access_key)
    return account


def _too_large() -> Reply:
    return _error(413, "", f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")


def _model_error(status: int, data: bytes, account: str, region: str, name: str) -> Reply:
    original = data.decode("utf-8", "replace")
    kind = "client" if 400 <= status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{name}"
    message = (f'Received {kind} error ({status}) from primary with message "{original}". See '
               f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
               f"group={group} in account {account} for more information.")
    return _error(424, "ModelError", message, OriginalStatusCode=status, OriginalMessage=original,
                  LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:{group}")


def _error(status: int, code: str, message: str | None, **fields: Any) -> Reply:
    # ModelError's body spells its members as the service model does (Message, OriginalStatusCode, ...)
    payload = json.dumps({"Message" if fields else "message": message, **fields}).encode()
    headers = [("Content-Type", "application/json")]
    if code:
        headers.append(("x-amzn-ErrorType", code))
    return status, headers, payload
