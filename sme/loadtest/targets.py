"""Where the load goes, resolved in the parent before any load is sent.

- ``url: http://host/path``: that URL, with the configured headers.
- ``gateway: NAME``: the front door recorded in ``.sme/NAME.json``: ``outputs["gateway_url"]`` is the
  full invoke URL (POSTed to as is) and ``secrets["api_key"]`` is sent as ``x-api-key``.
- ``endpoint: NAME``: SageMaker InvokeEndpoint for the endpoint recorded (kind ``endpoint``) in
  ``.sme/NAME.json``, at ``$AWS_ENDPOINT_URL`` if set (moto, `sme local`) or
  ``https://runtime.sagemaker.<region>.amazonaws.com``, signed with SigV4 (service ``sagemaker``) in
  the load processes. The region is ``target.region``, else the state's, else the AWS configuration's.
  Credentials are checked here; the load processes load their own (refreshable) copy. With
  ``stream: true`` it is InvokeEndpointWithResponseStream instead (``/invocations-response-stream``), whose
  answer is SageMaker's event stream around the model server's own stream. An asynchronous endpoint (its
  recorded config has an async output) gets InvokeEndpointAsync instead, its payloads uploaded to S3 first
  (``upload_async_inputs``; followed to their results by ``async_target``).

A streaming target says how its answer is framed (``stream``: ``eventstream`` or ``sse``); see
:mod:`sme.loadtest.streaming`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from sme.errors import ConfigError, UserError
from sme.loadtest.config import Target


def resolve(target: Target, source: str) -> dict[str, Any]:
    headers = dict(target.headers)
    base = {"kind": target.kind, "name": target.name, "method": target.method, "timeout": target.timeout,
            "insecure": target.insecure, "sign": None,
            "stream": ("eventstream" if target.kind == "endpoint" else "sse") if target.stream else None}
    if target.kind == "url":
        return base | {"url": target.name, "headers": headers}
    state = _state(target, source)
    if target.kind == "gateway":
        url = state.outputs.get("gateway_url")
        key = state.secrets.get("api_key")
        if not url:
            raise UserError(f"experiment {target.name!r} has no front door (no gateway_url in its deploy state)",
                            hint=f"deploy it with a gateway, or target `endpoint: {target.name}` instead")
        if key:
            headers.setdefault("x-api-key", key)
        return base | {"url": url, "headers": headers}
    record = state.find("endpoint")
    if record is None:
        raise UserError(f"experiment {target.name!r} has no endpoint in its deploy state",
                        hint=f"deploy it first with `sme deploy --name {target.name}`")
    region = target.region or state.region or _default_region()
    endpoint_url = os.environ.get("AWS_ENDPOINT_URL") or f"https://runtime.sagemaker.{region}.amazonaws.com"
    config = state.find("endpoint-config")
    asynchronous = bool(config and config.extra.get("async_output"))
    if asynchronous and target.stream:
        raise ConfigError(source, "target.stream", f"endpoint {record.name!r} is asynchronous: its answers are "
                          "written to S3, not streamed", hint="drop `stream:` to load it with InvokeEndpointAsync")
    # InvokeEndpointAsync, InvokeEndpointWithResponseStream or InvokeEndpoint
    action = "async-invocations" if asynchronous else "invocations-response-stream" if target.stream else "invocations"
    url = f"{endpoint_url.rstrip('/')}/endpoints/{quote(record.name, safe='')}/{action}"
    _check_credentials(region)
    resolved = base | {"url": url, "headers": headers, "endpoint": record.name,
                       "sign": {"region": region, "service": "sagemaker"}}
    if asynchronous:
        bucket = next((r.name for r in state.resources if r.kind == "bucket"), None)
        resolved["async"] = {"bucket": bucket or config.extra["async_output"][5:].split("/", 1)[0],
                             "experiment": target.name, "region": region}
    return resolved


def upload_async_inputs(target: dict[str, Any], bodies: Any, content_type: str) -> None:
    """An asynchronous endpoint reads its input from S3: upload each distinct payload once (under the
    experiment's bucket), and give the load processes the URI of each body."""
    from sme.aws import AwsContext
    from sme.loadtest.async_target import upload_inputs

    spec = target["async"]
    s3 = AwsContext.from_settings(None, spec["region"]).client("s3")
    try:
        spec["inputs"] = upload_inputs(s3, spec["bucket"], spec["experiment"], bodies, content_type)
    except Exception as exc:  # noqa: BLE001 - botocore's errors: said in the user's words, no traceback
        raise UserError(f"cannot upload the load test's payloads to s3://{spec['bucket']}/ ({exc})",
                        hint="check that the experiment's bucket exists and that you may write to it") from None


def _state(target: Target, source: str) -> Any:
    from sme.state import load_state

    try:
        return load_state(target.name, must_exist=True)
    except UserError as exc:
        raise ConfigError(source, f"target.{target.kind}", exc.message, hint=exc.hint) from None


def _default_region() -> str:
    from sme.aws import AwsContext

    return AwsContext.from_settings(None, None).session.region_name


def _check_credentials(region: str) -> None:
    from sme.aws import AwsContext

    AwsContext.from_settings(None, region).credentials()
