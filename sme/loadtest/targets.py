"""Where the load goes, resolved in the parent before any load is sent.

- ``url: http://host/path``: that URL, with the configured headers.
- ``gateway: NAME``: the front door recorded in ``.sme/NAME.json``: ``outputs["gateway_url"]`` is the
  full invoke URL (POSTed to as is) and ``secrets["api_key"]`` is sent as ``x-api-key``.
- ``endpoint: NAME``: SageMaker InvokeEndpoint for the endpoint recorded (kind ``endpoint``) in
  ``.sme/NAME.json``, at ``$AWS_ENDPOINT_URL`` if set (moto, `sme local`) or
  ``https://runtime.sagemaker.<region>.amazonaws.com``, signed with SigV4 (service ``sagemaker``) in
  the load processes. The region is ``target.region``, else the state's, else the AWS configuration's.
  Credentials are checked here; the load processes load their own (refreshable) copy.
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
            "insecure": target.insecure, "sign": None}
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
    url = f"{endpoint_url.rstrip('/')}/endpoints/{quote(record.name, safe='')}/invocations"
    _check_credentials(region)
    return base | {"url": url, "headers": headers, "endpoint": record.name,
                   "sign": {"region": region, "service": "sagemaker"}}


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
