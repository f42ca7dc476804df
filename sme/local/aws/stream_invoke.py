"""SageMaker Runtime InvokeEndpointWithResponseStream, answered by the endpoint's runtimes as AWS answers it.

AWS behaviour reproduced (the API reference and botocore's service model for sagemaker-runtime):

- ``POST /endpoints/NAME/invocations-response-stream`` goes to the variant's instances as InvokeEndpoint
  does (round robin, instances still warming up skipped), with the body, its Content-Type, the Accept
  the caller gave as ``X-Amzn-SageMaker-Accept`` and ``X-Amzn-SageMaker-Custom-Attributes``;
- once the container answers 2xx, the reply is 200 ``application/vnd.amazon.eventstream`` with
  ``x-Amzn-Invoked-Production-Variant`` and the container's Content-Type in
  ``X-Amzn-SageMaker-Content-Type``; every piece of the container's answer is sent on as it arrives, one
  ``PayloadPart`` event each; the stream ends with the answer, with no closing event;
- errors before the stream starts are InvokeEndpoint's: 403 without SigV4, 413 over 6 MB, 400
  ``ValidationError`` for an unknown endpoint, 424 ``ModelError`` when the container answers 4xx/5xx or
  does not answer its first byte within 60 s;
- errors after it started are exception events: ``ModelStreamError`` with ErrorCode ``StreamBroken``
  when the container's connection breaks, ``ModelInvocationTimeExceeded`` when it stops sending for 60 s.

Metrics are published as for InvokeEndpoint (``LocalEndpoints.observe``). ModelLatency for a stream is
taken to the container's last byte: AWS defines ModelLatency as the time "to send the request and to
fetch the response from the container ... and to complete the inference" (ScalingPolicyMetric in the
SageMaker API reference) and does not say otherwise for streams; a stream broken in mid-answer counts
as a 5XX. Each stream opens its own connection to the runtime (a stream lasts seconds; a connect on
loopback costs microseconds), read incrementally, chunked or by Content-Length.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any, AsyncIterator

from sme.local.aws import eventstream
from sme.local.aws.patches import sagemaker_runtime as invoke

ROUTE = re.compile(r"^/endpoints/([^/]+)/invocations-response-stream$")
PART_GAP_S = 60.0  # the longest the container may go without sending, once it has started


def is_stream_invocation(method: str, path: str) -> bool:
    return invoke.forwarding() is not None and method == "POST" and ROUTE.match(path) is not None


async def answer(request: Any, path: str, received: float) -> Any:
    """The whole exchange; returns the aiohttp response (already sent when it is a stream)."""
    from aiohttp import web

    endpoints, headers = invoke.forwarding(), request.headers
    refused, account, region, body = await _admit(headers, request.content.read)
    if refused is not None:
        return _reply(refused)
    name = ROUTE.match(path).group(1)  # type: ignore[union-attr]
    try:
        ep, variant, instance = endpoints.pick(account, region, name, headers.get("X-Amzn-SageMaker-Target-Variant"))
    except LookupError:
        return _reply(invoke._error(400, "ValidationError", f"Endpoint {name} of account {account} not found."))
    sent = time.perf_counter()
    try:
        reply = await RuntimeReply.open(instance.port, body, headers, invoke.MODEL_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError):
        reply = None
    if reply is None or not 200 <= reply.status < 300:
        status, data = (reply.status, await reply.read_all()) if reply is not None else (0, _TIMED_OUT)
        endpoints.observe(ep, variant, instance, status or 500, (time.perf_counter() - sent) * 1e6,
                          (sent - received) * 1e6)
        return _reply(invoke._model_error(status, data, account, region, name))
    response = web.StreamResponse(status=200, headers=_stream_headers(reply, variant))
    await response.prepare(request)
    status = await _relay(reply, response)
    model_s = time.perf_counter() - sent
    endpoints.observe(ep, variant, instance, status, model_s * 1e6, (time.perf_counter() - received - model_s) * 1e6)
    return response


_TIMED_OUT = b"Your invocation timed out while waiting for a response from container primary."


async def _admit(headers: Any, read_body: Any) -> tuple[Any, str, str, bytes]:
    """(refusal or None, account, region, body): InvokeEndpoint's checks, in its order."""
    scope = invoke._SCOPE.search(headers.get("Authorization", ""))
    if scope is None:
        return invoke._error(403, "MissingAuthenticationTokenException", "Missing Authentication Token"), "", "", b""
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > invoke.MAX_BODY_BYTES:
        return invoke._too_large(), "", "", b""
    body = await read_body()
    if len(body) > invoke.MAX_BODY_BYTES:
        return invoke._too_large(), "", "", b""
    return None, invoke._account(scope.group(1)), scope.group(2), body


async def _relay(reply: "RuntimeReply", response: Any) -> int:
    """Each piece of the container's answer as one PayloadPart; the status to count for the metrics."""
    pieces, status = reply.pieces(PART_GAP_S), reply.status
    try:
        while True:
            try:
                piece = await pieces.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                await _send_error(response, "ModelInvocationTimeExceeded", "The model did not send a part of its "
                                  f"response within {PART_GAP_S:g} seconds.")
                return 500
            except (OSError, ValueError, asyncio.IncompleteReadError):
                await _send_error(response, "StreamBroken", "The connection between SageMaker and the model was "
                                  "closed before the model finished its response.")
                return 500
            await response.write(eventstream.payload_part(piece))  # the caller gone: ConnectionError, below
        await response.write_eof()
    except ConnectionError:
        pass  # the caller went away; closing the runtime's connection ends the generation there too
    finally:
        reply.close()
    return status


async def _send_error(response: Any, code: str, message: str) -> None:
    try:
        await response.write(eventstream.exception("ModelStreamError", {"Message": message, "ErrorCode": code}))
    except ConnectionError:
        pass


def _stream_headers(reply: "RuntimeReply", variant: str) -> dict[str, str]:
    headers = {"Content-Type": eventstream.CONTENT_TYPE, "x-Amzn-Invoked-Production-Variant": variant,
               "X-Amzn-SageMaker-Content-Type": reply.content_type or "application/octet-stream"}
    if reply.custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = reply.custom_attributes
    return headers


def _reply(reply: tuple[int, list, bytes]) -> Any:
    from aiohttp import web
    from multidict import CIMultiDict

    status, headers, body = reply
    return web.Response(status=status, body=body, headers=CIMultiDict(headers))


class RuntimeReply:
    """A runtime's HTTP/1.1 reply, read as it comes: chunked or by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                 fields: dict[str, str]):
        self.reader, self.writer, self.status = reader, writer, status
        self.content_type = fields.get("content-type", "")
        self.custom_attributes = fields.get("x-amzn-sagemaker-custom-attributes", "")
        self.chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        self.length = int(fields["content-length"]) if "content-length" in fields else None

    @classmethod
    async def open(cls, port: int, body: bytes, headers: Any, first_byte_s: float) -> "RuntimeReply":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: {headers.get('Content-Type') or 'application/octet-stream'}\r\n"
                f"Accept: {headers.get('X-Amzn-SageMaker-Accept') or '*/*'}\r\n"
                + (f"X-Amzn-SageMaker-Custom-Attributes: {headers['X-Amzn-SageMaker-Custom-Attributes']}\r\n"
                   if headers.get("X-Amzn-SageMaker-Custom-Attributes") else "")
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        writer.write(head + body)
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), first_byte_s)
        except BaseException:
            writer.close()
            raise
        lines = raw[:-4].decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return cls(reader, writer, int(lines[0].split(" ", 2)[1]), fields)

    async def pieces(self, gap_s: float) -> AsyncIterator[bytes]:
        """The body as the runtime wrote it: each chunk (or each read) as soon as it is here."""
        read = self.reader
        if self.chunked:
            while True:
                size = int((await asyncio.wait_for(read.readuntil(b"\r\n"), gap_s)).split(b";")[0], 16)
                if size == 0:
                    return
                data = await asyncio.wait_for(read.readexactly(size + 2), gap_s)
                yield data[:-2]
        remaining = self.length
        while remaining is None or remaining > 0:
            data = await asyncio.wait_for(read.read(65536 if remaining is None else min(65536, remaining)), gap_s)
            if not data:
                if remaining is None:
                    return  # a body that ends when the connection does
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining = None if remaining is None else remaining - len(data)
            yield data

    async def read_all(self) -> bytes:
        try:
            return b"".join([piece async for piece in self.pieces(invoke.MODEL_TIMEOUT_S)])
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            return b""
        finally:
            self.close()

    def close(self) -> None:
        self.writer.close()
