"""Waiting for an endpoint: an explicit limit, a live status line, and a check of what went live.

SageMaker rolls back a failed update silently and reports InService, so after InService the live
EndpointConfigName is compared with the one asked for. The clock and sleep come from Env (injected).
"""

from __future__ import annotations

from typing import Any

from sme.console import Env
from sme.errors import DeployFailed, Interrupted, WaitTimeout
from sme.units import format_duration

DONE = "InService"
FAILED = ("Failed", "OutOfService")


def wait_for_endpoint(aws: Any, env: Env, name: str, expected_config: str, *, timeout: float, poll: float) -> dict:
    from sme.core.observe import RemoteState

    remote = RemoteState(aws)
    start = env.clock()
    status_line = env.status_line()
    try:
        while True:
            raw = remote.describe_endpoint(name)
            elapsed = env.clock() - start
            if raw is None:
                raise DeployFailed(f"endpoint {name} disappeared while waiting for it")
            status = raw["EndpointStatus"]
            status_line.show(f"endpoint {name}: {status}  {format_duration(elapsed)} elapsed "
                             f"(limit {format_duration(timeout)})", status)
            if status == DONE:
                return _check_live_config(raw, name, expected_config)
            if status in FAILED:
                reason = raw.get("FailureReason") or "SageMaker gave no reason"
                raise DeployFailed(f"endpoint {name} is {status}: {reason}",
                                   hint="fix the cause, then run `sme deploy` again (it recreates a Failed "
                                   "endpoint), or `sme teardown`")
            if elapsed >= timeout:
                raise WaitTimeout(f"endpoint {name} still {status} after {format_duration(elapsed)}",
                                  hint="run `sme deploy` again to keep waiting (nothing is lost), or raise --timeout")
            env.sleep(min(poll, max(0.0, timeout - elapsed)))
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; endpoint {name} is still changing in AWS and sme recorded it",
                          hint="run the same `sme deploy` again to continue waiting, or `sme teardown`") from None
    finally:
        status_line.close()


def _check_live_config(raw: dict, name: str, expected: str) -> dict:
    live = raw.get("EndpointConfigName")
    if expected and live != expected:
        reason = raw.get("FailureReason") or "no reason given"
        raise DeployFailed(
            f"endpoint {name} is InService but on config {live}, not {expected}: SageMaker rolled the update "
            f"back ({reason})",
            hint="check the new model's container logs in CloudWatch (/aws/sagemaker/Endpoints/" + name + ")")
    return raw


def wait_for_endpoint_gone(aws: Any, env: Env, name: str, *, timeout: float, poll: float) -> None:
    from sme.core.observe import RemoteState

    remote = RemoteState(aws)
    start = env.clock()
    while True:
        raw = remote.describe_endpoint(name)
        if raw is None:
            return
        elapsed = env.clock() - start
        if elapsed >= timeout:
            raise WaitTimeout(f"endpoint {name} still {raw['EndpointStatus']} after {format_duration(elapsed)}",
                              hint="run the command again to keep waiting")
        env.sleep(min(poll, max(0.0, timeout - elapsed)))
