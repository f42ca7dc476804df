"""A load test against a serverless endpoint: its cold starts and its throttles, as SageMaker reports them.

- Throttles are the run's error replies whose AWS error code is ``ThrottlingException`` (HTTP 400): the
  requests SageMaker refused beyond the endpoint's MaxConcurrency, counted by the load processes like every
  error (``summary.json`` ``errors[]``, ``error_code``).
- Cold starts are CloudWatch's ``ModelSetupTime`` over the run: one sample per runtime started for a request
  (SampleCount), its Average and Maximum in microseconds. The client cannot tell which of its requests
  waited for one; SageMaker can. CloudWatch publishes late (AWS: a minute or two; the twin: its metrics
  period), so sme waits until CloudWatch's ``Invocations`` over the run account for every request the
  endpoint took in (the run's requests less throttles and those that got no reply at all), at most
  ``SME_CLOUDWATCH_WAIT_S`` seconds (default 150), and says so when they never did: the cold starts are then
  a lower bound.

The section is added to ``summary.json`` as ``serverless`` and printed under the SLO table.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timezone
from typing import Any, Callable

THROTTLE = "ThrottlingException"
WAIT_ENV = "SME_CLOUDWATCH_WAIT_S"
DEFAULT_WAIT_S = 150.0
POLL_S = 2.0


def serverless_variant(sagemaker: Any, endpoint: str) -> tuple[str, dict] | None:
    """(variant name, its ServerlessConfig) when the endpoint is serverless, else None."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    for variant in described.get("ProductionVariants") or []:
        config = variant.get("CurrentServerlessConfig") or variant.get("DesiredServerlessConfig")
        if config:
            return variant["VariantName"], config
    if not described.get("EndpointConfigName"):  # a stand-in that answers no config: nothing says serverless
        return None
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    for variant in config.get("ProductionVariants") or []:
        if variant.get("ServerlessConfig"):
            return variant["VariantName"], variant["ServerlessConfig"]
    return None


def throttles(summary: dict[str, Any]) -> int:
    return sum(e["count"] for e in summary["errors"] if e.get("error_code") == THROTTLE)


def taken_in(summary: dict[str, Any]) -> int:
    """Requests that reached the endpoint's model: neither throttled nor without any reply."""
    unanswered = sum(e["count"] for e in summary["errors"] if e["kind"] == "exception")
    return summary["requests"] - throttles(summary) - unanswered


def _queries(endpoint: str, variant: str, period: int) -> list[dict[str, Any]]:
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    wanted = [("invocations", "Invocations", "Sum"), ("setups", "ModelSetupTime", "SampleCount"),
              ("setup_avg", "ModelSetupTime", "Average"), ("setup_max", "ModelSetupTime", "Maximum")]
    return [{"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": dims},
        "Period": period, "Stat": stat}} for qid, name, stat in wanted]


def read_cold_starts(cloudwatch: Any, endpoint: str, variant: str, started_at: float,
                     now: float) -> dict[str, float | None]:
    """Invocations and ModelSetupTime (count, average, maximum) from the run's start to now, in one call."""
    start = math.floor(started_at / 60) * 60  # CloudWatch's buckets start on the minute
    end = math.ceil((now + 1) / 60) * 60
    period = end - start
    reply = cloudwatch.get_metric_data(MetricDataQueries=_queries(endpoint, variant, period),
                                       StartTime=datetime.fromtimestamp(start, timezone.utc),
                                       EndTime=datetime.fromtimestamp(end, timezone.utc))
    values = {r["Id"]: r.get("Values") or [] for r in reply["MetricDataResults"]}
    setups = sum(values["setups"])
    average = (sum(a * n for a, n in zip(values["setup_avg"], values["setups"])) / setups) if setups else None
    return {"invocations": sum(values["invocations"]), "setups": setups, "setup_avg_us": average,
            "setup_max_us": max(values["setup_max"]) if values["setup_max"] else None}


def section(aws: Any, endpoint: str, found: tuple[str, dict], summary: dict[str, Any], info: Callable[[str], None],
            clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The ``serverless`` section of a run's summary; ``found`` is what ``serverless_variant`` answered
    before the run (so that no control-plane call follows the load in the target's request log)."""
    variant, config = found
    expected = taken_in(summary)
    wait_s = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))
    deadline = clock() + wait_s
    info(f"reading {endpoint}'s ModelSetupTime from CloudWatch (waiting up to {wait_s:g} s for its "
         f"Invocations to count this run's {expected} requests)")
    while True:
        seen = read_cold_starts(aws.client("cloudwatch"), endpoint, variant, summary["started_at"], clock())
        if seen["invocations"] >= expected or clock() >= deadline:
            break
        sleep(POLL_S)
    return _section(variant, config, summary, expected, seen)


def _section(variant: str, config: dict, summary: dict[str, Any], expected: int,
             seen: dict[str, float | None]) -> dict[str, Any]:
    def ms(us: float | None) -> float | None:
        return None if us is None else round(us / 1000.0, 3)

    return {"variant": variant, "memory_mb": config.get("MemorySizeInMB"),
            "max_concurrency": config.get("MaxConcurrency"),
            "provisioned_concurrency": config.get("ProvisionedConcurrency"),
            "throttles": throttles(summary), "requests_taken_in": expected,
            "cold_starts": int(seen["setups"] or 0),
            "model_setup_time_ms": {"average": ms(seen["setup_avg_us"]), "max": ms(seen["setup_max_us"])},
            "cloudwatch_invocations": int(seen["invocations"] or 0),
            "complete": (seen["invocations"] or 0) >= expected,
            "source": "CloudWatch AWS/SageMaker ModelSetupTime (SampleCount, Average, Maximum) over the run"}


def render(console: Any, serverless: dict[str, Any] | None) -> None:
    if not serverless:
        return
    setup, provisioned = serverless["model_setup_time_ms"], serverless["provisioned_concurrency"]
    limits = f"max concurrency {serverless['max_concurrency']}"
    limits += f", provisioned {provisioned}" if provisioned else ""
    cold = f"{serverless['cold_starts']} cold starts"
    if serverless["cold_starts"]:
        cold += f" (ModelSetupTime avg {_ms(setup['average'])}, max {_ms(setup['max'])})"
    console.print(f"serverless ({limits}): {cold}, {serverless['throttles']} throttled (400 {THROTTLE})", markup=False)
    if not serverless["complete"]:
        console.print(f"  CloudWatch counted {serverless['cloudwatch_invocations']} of the "
                      f"{serverless['requests_taken_in']} requests the endpoint took in when sme stopped waiting: "
                      "cold starts are a lower bound (re-read them later with `sme watch`)", markup=False)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:g} ms"
