"""`sme invoke`: one request to the endpoint (SageMaker runtime) or through the front door; reply and latency.

The reply body goes to stdout (so it can be piped); status, content type and latency go to stderr. The
API key is read from the state file and sent as ``x-api-key``; it is never printed.

Piped or redirected, stdout is the body byte for byte (it may be binary, or a CSV whose last line has no
newline on purpose). On a terminal, a body that does not end in a newline gets one, so the status line
that follows on stderr starts on a line of its own instead of running into the reply.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sme.errors import SmeError, UserError


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    latency_ms: float
    via: str


def read_body(spec: str) -> bytes:
    """`@path` reads a file, `-` reads stdin, anything else is the body itself."""
    if spec == "-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read the body file ({exc.strerror})",
                            hint="pass --body @path/to/file, --body - for stdin, or the payload itself") from None
    return spec.encode()


def via_endpoint(aws: Any, name: str, body: bytes, content_type: str, accept: str | None) -> Reply:
    from sme.aws import aws_call

    kwargs = {"EndpointName": name, "Body": body, "ContentType": content_type}
    if accept:
        kwargs["Accept"] = accept
    started = time.perf_counter()
    with aws_call("sagemaker-runtime:InvokeEndpoint", name):
        reply = aws.client("sagemaker-runtime").invoke_endpoint(**kwargs)
        data = reply["Body"].read()
    return Reply(200, reply.get("ContentType", ""), data, (time.perf_counter() - started) * 1000, "endpoint")


def via_gateway(url: str, key: str, body: bytes, content_type: str, accept: str | None,
                endpoint_url: str | None = None) -> Reply:
    import urllib.error
    import urllib.parse
    import urllib.request

    headers = {"Content-Type": content_type, "x-api-key": key}
    if accept:
        headers["Accept"] = accept
    target = url
    if endpoint_url:  # a local stand-in (AWS_ENDPOINT_URL) serves execute-api by Host header
        parts = urllib.parse.urlsplit(url)
        headers["Host"] = parts.netloc
        target = endpoint_url.rstrip("/") + parts.path
    request = urllib.request.Request(target, data=body, method="POST", headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            data, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        data, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    except urllib.error.URLError as exc:
        raise SmeError(f"cannot reach the front door at {url}: {exc.reason}") from None
    return Reply(status, ctype, data, (time.perf_counter() - started) * 1000, "gateway")


def invoke(name: str, body_spec: str, content_type: str, accept: str | None, via: str | None,
           region: str | None, profile: str | None, env: Any) -> int:
    from sme.aws import AwsContext
    from sme.errors import ExitStatus
    from sme.state import load_state

    state = load_state(name)
    body = read_body(body_spec)
    via = via or ("gateway" if state.outputs.get("gateway_url") else "endpoint")
    aws = AwsContext.from_settings(profile=profile, region=region or state.region or None)
    if via == "gateway":
        url, key = state.outputs.get("gateway_url"), state.secrets.get("api_key")
        if not url or not key:
            raise UserError(f"{name} has no front door recorded in its state file",
                            hint="add a `gateway:` section and deploy, or use --via endpoint")
        reply = via_gateway(url, key, body, content_type, accept, aws.endpoint_url)
    else:
        reply = via_endpoint(aws, name, body, content_type, accept)
    write_body(env.stdout, reply.body)
    env.info(f"{reply.status} {reply.content_type or '-'} {len(reply.body)} bytes in {reply.latency_ms:.1f} ms "
             f"via {reply.via}")
    return ExitStatus.OK if reply.status < 400 else ExitStatus.ERROR


def write_body(stdout: Any, body: bytes) -> None:
    """The reply on stdout: exact when piped; on a terminal, ended with a newline (see the module's note)."""
    if getattr(stdout, "isatty", lambda: False)() and not body.endswith(b"\n"):
        body += b"\n"
    if hasattr(stdout, "buffer"):
        stdout.buffer.write(body)
    else:
        stdout.write(body.decode("utf-8", "replace"))
    stdout.flush()
