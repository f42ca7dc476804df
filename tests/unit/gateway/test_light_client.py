"""The proxy's own InvokeEndpoint call against boto3's, the oracle: the same input must give the same signed
request on the wire, and the same canned answer the same result, exception and handler reply."""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time

import boto3
import botocore.auth
import botocore.exceptions
import pytest
from botocore.config import Config

from sme.gateway import handler as proxy

FROZEN = datetime.datetime(2026, 3, 14, 15, 9, 26)
SIGNED = ("authorization", "x-amz-date", "x-amz-security-token", "content-type", "accept",
          "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-target-variant", "host")


class CannedServer:
    """127.0.0.1 HTTP/1.1 that records each request and answers with the next canned reply (the last one
    repeats). A reply ending the connection closes it after answering; ``drop_idle`` closes it silently
    after each answer, as a server's idle timeout does."""

    def __init__(self, replies: list[bytes], drop_idle: bool = False):
        self.replies, self.drop_idle, self.requests, self.connections = list(replies), drop_idle, [], 0
        self.closed = threading.Semaphore(0)  # released as each connection is closed on this side
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        with conn, stream:
            while (line := stream.readline()):
                headers = {}
                while (header := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers.get("content-length", 0)))
                self.requests.append((line.decode().strip(), headers, body))
                reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
                conn.sendall(reply)
                if b"Connection: close" in reply or self.drop_idle:
                    break
        self.closed.release()

    def close(self) -> None:
        self._listener.close()


def reply(status: int, headers: dict, body: bytes, close: bool = False) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body)}.items())
    return f"HTTP/1.1 {status} X\r\n{lines}{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode() + body


OK = reply(200, {"Content-Type": "text/csv", "x-Amzn-Invoked-Production-Variant": "AllTraffic",
                 "X-Amzn-SageMaker-Custom-Attributes": "trace=1", "x-amzn-RequestId": "r-1"}, b"0.93\n")
MODEL_ERROR = reply(424, {"Content-Type": "application/json", "x-amzn-RequestId": "r-2",
                          "x-amzn-ErrorType": "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/"},
                    json.dumps({"ErrorCode": "CLIENT_ERROR_FROM_MODEL", "Message": "Received server error (500) "
                                "from primary with message \"division by zero\"", "OriginalStatusCode": 500,
                                "OriginalMessage": "division by zero",
                                "LogStreamArn": "arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/Endpoints/churn"}
                               ).encode())
CANNED = {
    "ok": OK,
    "model error": MODEL_ERROR,
    "missing endpoint": reply(400, {"Content-Type": "application/json", "x-amzn-ErrorType":
                                    "ValidationError:http://internal.amazon.com/coral/com.amazon.coral.validate/"},
                              b'{"message":"Endpoint churn of account 123456789012 not found."}'),
    "throttled": reply(400, {"Content-Type": "application/json"},
                       b'{"__type":"ThrottlingException","message":"Rate exceeded"}'),
    "unavailable": reply(503, {"Content-Type": "application/json", "x-amzn-ErrorType": "ServiceUnavailable"},
                         b'{"message":"try again"}'),
    "not ready": reply(429, {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelNotReadyException"},
                       b'{"Message":"the model is loading"}'),
    "not json": reply(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>"),
}


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials, a frozen clock for both signers, and a factory of the two clients for a URL."""
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                        "AWS_SESSION_TOKEN": "token-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # both clients' retry backoff: botocore's to choose

    def clients(url: str | None):
        if url is None:
            monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        else:
            monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        oracle = boto3.session.Session().client("sagemaker-runtime", config=Config(retries={"mode": "standard", "max_attempts": 2},
                                                                 read_timeout=60))
        return proxy.SageMakerRuntime(), oracle

    return clients


def signed_part(headers: dict) -> dict:
    return {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in headers.items() if k.lower() in SIGNED}


CALLS = [
    {"EndpointName": "churn", "Body": b"1,2,3", "ContentType": "text/csv"},
    {"EndpointName": "churn-v2", "Body": "1.5,2\n3,4", "ContentType": "text/csv", "Accept": "application/json",
     "CustomAttributes": "trace=abc, x=1", "TargetVariant": "Blue"},
    {"EndpointName": "a1", "Body": b"\x00\xff\x10", "ContentType": "application/x-npy"},
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("url", [None, "https://runtime.sagemaker.eu-west-1.amazonaws.com", "http://127.0.0.1:8000"])
def test_the_signed_request_is_botocores_for_the_same_call(aws, monkeypatch, call, url):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    light, oracle = aws(url)
    seen = {}

    def capture(request, **kw):
        seen.update(url=request.url, body=request.body, headers=dict(request.headers))
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, None)

    oracle.meta.events.register("before-send", capture)
    oracle.invoke_endpoint(**call)
    sent_url, body, headers = light.signed(call)
    assert sent_url == seen["url"] and body == seen["body"]
    assert signed_part(headers) == signed_part(seen["headers"]), "the signed headers differ from botocore's"
    assert "Signature=" in headers["Authorization"] and "token-1" == headers["X-Amz-Security-Token"]


@pytest.mark.parametrize("call", CALLS[:2])
def test_the_request_on_the_wire_is_the_one_boto3_sends(aws, call):
    server = CannedServer([OK])
    try:
        light, oracle = aws(server.url)
        ours, theirs = light.invoke_endpoint(**call), oracle.invoke_endpoint(**call)
        (line, headers, body), (line_o, headers_o, body_o) = server.requests
        assert line == line_o and body == body_o
        assert signed_part(headers) == signed_part(headers_o)
        assert headers["content-length"] == headers_o["content-length"]
        assert ours["Body"].read() == theirs["Body"].read() == b"0.93\n"
        assert {k: v for k, v in ours.items() if k not in ("Body", "ResponseMetadata")} == \
            {k: v for k, v in theirs.items() if k not in ("Body", "ResponseMetadata")}
        assert ours["ResponseMetadata"]["RequestId"] == theirs["ResponseMetadata"]["RequestId"] == "r-1"
        assert ours["ResponseMetadata"]["HTTPHeaders"] == theirs["ResponseMetadata"]["HTTPHeaders"]
        assert ours["ResponseMetadata"]["RetryAttempts"] == theirs["ResponseMetadata"]["RetryAttempts"] == 0
    finally:
        server.close()


def outcome(client, call):
    try:
        return "answer", {k: v for k, v in client.invoke_endpoint(**call).items() if k != "Body"}
    except botocore.exceptions.ClientError as exc:
        return type(exc).__name__, {k: v for k, v in exc.response.items() if k != "ResponseMetadata"}, str(exc)


@pytest.mark.parametrize("name", sorted(set(CANNED) - {"ok"}))
def test_errors_retries_and_handler_replies_are_boto3s(aws, monkeypatch, name):
    server = CannedServer([CANNED[name]])
    try:
        light, oracle = aws(server.url)
        ours = outcome(light, CALLS[0])
        our_attempts = len(server.requests)
        theirs = outcome(oracle, CALLS[0])
        assert ours == theirs
        assert our_attempts == len(server.requests) - our_attempts, "boto3 made as many attempts"
        monkeypatch.setenv("SME_ENDPOINT_NAME", "churn")
        event = {"httpMethod": "POST", "headers": {"Content-Type": "text/csv"}, "body": "1,2,3"}
        replies = []
        for client in (light, oracle):
            monkeypatch.setattr(proxy, "_CLIENT", client)
            replies.append(proxy.handler(event, None))
        assert replies[0] == replies[1] and replies[0]["statusCode"] >= 400
    finally:
        server.close()


def test_one_connection_is_kept_across_invocations(aws):
    server = CannedServer([OK])
    try:
        light, _ = aws(server.url)
        for _ in range(5):
            light.invoke_endpoint(**CALLS[0])
        assert len(server.requests) == 5 and server.connections == 1
    finally:
        server.close()


@pytest.mark.parametrize("server_closes", ["with Connection: close", "silently when idle"])
def test_a_connection_the_server_closed_is_replaced_without_an_error(aws, server_closes):
    if server_closes == "silently when idle":
        server = CannedServer([OK], drop_idle=True)
    else:
        server = CannedServer([reply(200, {"Content-Type": "text/csv"}, b"1", close=True)])
    try:
        light, _ = aws(server.url)
        for _ in range(3):
            light.invoke_endpoint(**CALLS[0])
            # the next call must find the connection closed, not race the server's close
            assert server.closed.acquire(timeout=30), "the server did not close the connection"
        assert len(server.requests) == 3 and server.connections == 3
    finally:
        server.close()


def test_no_server_is_botocores_connection_error_after_its_retries(aws):
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    light, oracle = aws(url)
    errors = []
    for client in (light, oracle):
        with pytest.raises(botocore.exceptions.EndpointConnectionError) as caught:
            client.invoke_endpoint(**CALLS[0])
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_a_silent_server_is_a_read_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        connection = proxy.Connection(url, connect_timeout=5, read_timeout=0.2)
        with pytest.raises(botocore.exceptions.ReadTimeoutError, match="Read timeout on endpoint URL"):
            connection.post(f"{url}/endpoints/e/invocations", b"1", {"Content-Type": "text/csv"})
    finally:
        listener.close()


def test_rotated_credentials_sign_the_next_call(aws, monkeypatch):
    light, _ = aws("http://127.0.0.1:8000")
    first = light.signed(CALLS[0])[2]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDROTATED")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-2")
    second = light.signed(CALLS[0])[2]
    assert "Credential=AKIDEXAMPLE/" in first["Authorization"]
    assert "Credential=AKIDROTATED/" in second["Authorization"] and second["X-Amz-Security-Token"] == "token-2"


def test_a_header_with_a_line_break_is_refused_before_sending(aws):
    server = CannedServer([OK])
    try:
        light, _ = aws(server.url)
        with pytest.raises(ValueError):
            light.invoke_endpoint(**{**CALLS[0], "Accept": "text/csv\r\nX-Evil: 1"})
        assert server.requests == []
    finally:
        server.close()
