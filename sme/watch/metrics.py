"""Which CloudWatch series a sample reads, and how one GetMetricData call fetches them all.

The metric -> (namespace, statistic) map is data (``METRICS``): change the table, not the code. A series
is (variant, metric, statistic); its key in a sample is the metric's name when the statistic is the
metric's default, else ``Metric:Stat`` (``ModelLatency:p99``). Percentiles are offered only when asked
for (``--metric ModelLatency:p99`` or ``--p99``): they are costlier, and moto cannot serve them.

An experiment with a front door also gets the front door's series (``FRONT_DOOR_METRICS``, keyed under
``FRONT_DOOR`` instead of a variant): API Gateway's by ApiName, the Lambda proxy's by FunctionName.

Every series of a sample goes into one GetMetricData call (500 queries per call is CloudWatch's limit;
past it, the queries are split into as few calls as that allows). A series with no datapoint in the
window is ``null``: CloudWatch publishes SageMaker metrics a minute or two late, so the newest
sample can undercount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from sme.errors import UserError

SAGEMAKER = "AWS/SageMaker"
INSTANCE = "/aws/sagemaker/Endpoints"

# metric -> (namespace, default statistic). Counts are summed over the window, latencies and
# utilisations averaged; ModelSetupTime (serverless cold starts) is a worst case, hence Maximum.
METRICS: dict[str, tuple[str, str]] = {
    "Invocations": (SAGEMAKER, "Sum"),
    "InvocationsPerInstance": (SAGEMAKER, "Sum"),
    "ModelLatency": (SAGEMAKER, "Average"),
    "OverheadLatency": (SAGEMAKER, "Average"),
    "Invocation4XXErrors": (SAGEMAKER, "Sum"),
    "Invocation5XXErrors": (SAGEMAKER, "Sum"),
    "ModelSetupTime": (SAGEMAKER, "Maximum"),
    "CPUUtilization": (INSTANCE, "Average"),
    "MemoryUtilization": (INSTANCE, "Average"),
    "DiskUtilization": (INSTANCE, "Average"),
    "GPUUtilization": (INSTANCE, "Average"),
    "GPUMemoryUtilization": (INSTANCE, "Average"),
}
# a serverless endpoint's own metrics (SageMaker's serverless monitoring page lists them; the provisioned
# concurrency ones only for a variant with ProvisionedConcurrency). Concurrency levels averaged, counts summed.
SERVERLESS_METRICS: dict[str, tuple[str, str]] = {
    "ServerlessConcurrentExecutionsUtilization": (SAGEMAKER, "Average"),
    "ServerlessProvisionedConcurrencyExecutions": (SAGEMAKER, "Average"),
    "ServerlessProvisionedConcurrencyUtilization": (SAGEMAKER, "Average"),
    "ServerlessProvisionedConcurrencyInvocations": (SAGEMAKER, "Sum"),
    "ServerlessProvisionedConcurrencySpilloverInvocations": (SAGEMAKER, "Sum"),
}
# what a serverless variant does not publish: it has no instances
INSTANCE_ONLY = ("InvocationsPerInstance", "CPUUtilization", "DiskUtilization", "GPUUtilization",
                 "GPUMemoryUtilization")
APIGATEWAY = "AWS/ApiGateway"
LAMBDA = "AWS/Lambda"
# the front door: API Gateway (by ApiName, a dimension set AWS publishes by default) and the Lambda proxy
# (by FunctionName). Its latencies and Duration are averaged; counts summed.
FRONT_DOOR_METRICS: dict[str, tuple[str, str]] = {
    "Count": (APIGATEWAY, "Sum"),
    "Latency": (APIGATEWAY, "Average"),
    "IntegrationLatency": (APIGATEWAY, "Average"),
    "4XXError": (APIGATEWAY, "Sum"),
    "5XXError": (APIGATEWAY, "Sum"),
    "Duration": (LAMBDA, "Average"),
    "Errors": (LAMBDA, "Sum"),
    "Throttles": (LAMBDA, "Sum"),
}
FRONT_DOOR = "front door"  # the key its series are fetched under (no variant name has a space)
# an asynchronous endpoint's queue, published per endpoint (dimension EndpointName only): the backlog is
# averaged over the window, whether it had a backlog with no instance to serve it is its worst case
ASYNC_METRICS: dict[str, tuple[str, str]] = {
    "ApproximateBacklogSize": (SAGEMAKER, "Average"),
    "ApproximateBacklogSizePerInstance": (SAGEMAKER, "Average"),
    "HasBacklogWithoutCapacity": (SAGEMAKER, "Maximum"),
    "ApproximateAgeOfOldestRequest": (SAGEMAKER, "Maximum"),
}
ASYNC_QUEUE = "async queue"  # the key its series are fetched under
# what each metric is measured in, as CloudWatch reports it: SageMaker's latencies in microseconds,
# API Gateway's and Lambda's in milliseconds
UNITS: dict[str, str] = {"ModelLatency": "us", "OverheadLatency": "us", "ModelSetupTime": "us",
                         "CPUUtilization": "%", "MemoryUtilization": "%", "DiskUtilization": "%",
                         "GPUUtilization": "%", "GPUMemoryUtilization": "%",
                         "Latency": "ms", "IntegrationLatency": "ms", "Duration": "ms",
                         "ApproximateAgeOfOldestRequest": "s", "ApproximateBacklogSize": "level",
                         "ApproximateBacklogSizePerInstance": "level", "HasBacklogWithoutCapacity": "level"}
_KNOWN = {**METRICS, **SERVERLESS_METRICS}
_DEFAULT_STAT = {name: stat for name, (_, stat) in {**_KNOWN, **FRONT_DOOR_METRICS, **ASYNC_METRICS}.items()}
# what --p99 adds
P99_METRICS = ("ModelLatency", "OverheadLatency")
P99_FRONT_DOOR = ("Latency", "IntegrationLatency")
MAX_QUERIES = 500  # GetMetricData's limit per call
_STAT = re.compile(r"^(Sum|Average|Maximum|Minimum|SampleCount|p\d{1,2}(\.\d{1,3})?)$")
# CloudWatch accepts these periods, or any multiple of 60
_SHORT_PERIODS = (1, 5, 10, 30)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    namespace: str
    stat: str

    @property
    def key(self) -> str:
        return self.name if _DEFAULT_STAT.get(self.name) == self.stat else f"{self.name}:{self.stat}"


@dataclass(frozen=True)
class Series:
    variant: str  # or FRONT_DOOR
    metric: MetricSpec
    dimensions: tuple[tuple[str, str], ...] = ()  # empty: the endpoint's and the variant's


@dataclass(frozen=True)
class FrontDoor:
    """The API Gateway REST API and Lambda proxy sme put in front of the endpoint."""

    api_name: str
    function_name: str


def unit_of(key: str) -> str:
    """``us``, ``ms``, ``%`` or ``count`` for a series key (``ModelLatency:p99``)."""
    name, _, stat = key.partition(":")
    return "count" if stat == "SampleCount" else UNITS.get(name, "count")


def parse_metric_specs(values: Iterable[str], p99: bool = False) -> tuple[MetricSpec, ...]:
    """`--metric NAME[:STAT]` values (comma lists allowed) -> specs; none given means every default."""
    items = [part.strip() for v in values for part in str(v).split(",") if part.strip()]
    specs: list[MetricSpec] = []
    if not items:
        specs = [MetricSpec(name, ns, stat) for name, (ns, stat) in METRICS.items()]
    for item in items:
        name, _, stat = item.partition(":")
        if name not in _KNOWN:
            raise UserError(f"--metric {item!r}: unknown metric {name!r}",
                            hint=f"use one of {', '.join(_KNOWN)} (optionally :Sum, :Average, :Maximum, :p99)")
        stat = stat or _KNOWN[name][1]
        if not _STAT.fullmatch(stat):
            raise UserError(f"--metric {item!r}: unknown statistic {stat!r}",
                            hint="use Sum, Average, Maximum, Minimum, SampleCount or a percentile such as p99")
        specs.append(MetricSpec(name, _KNOWN[name][0], stat))
    if p99:
        specs += [MetricSpec(n, METRICS[n][0], "p99") for n in P99_METRICS]
    return tuple(dict.fromkeys(specs))  # unique, in order


def serverless_specs(specs: tuple[MetricSpec, ...], provisioned: bool) -> tuple[MetricSpec, ...]:
    """The default metrics for a serverless endpoint: no instance metrics, its serverless ones instead (the
    provisioned-concurrency ones when it has provisioned concurrency)."""
    kept = [m for m in specs if m.name not in INSTANCE_ONLY]
    added = [MetricSpec(name, ns, stat) for name, (ns, stat) in SERVERLESS_METRICS.items()
             if provisioned or "Provisioned" not in name]
    return tuple(dict.fromkeys(kept + added))


def series_for(variants: Iterable[str], specs: Iterable[MetricSpec]) -> list[Series]:
    specs = tuple(specs)
    return [Series(v, m) for v in variants for m in specs]


def front_door_series(door: FrontDoor | None, p99: bool = False) -> list[Series]:
    if door is None:
        return []
    specs = [MetricSpec(n, ns, stat) for n, (ns, stat) in FRONT_DOOR_METRICS.items()]
    if p99:
        specs += [MetricSpec(n, APIGATEWAY, "p99") for n in P99_FRONT_DOOR]
    return [Series(FRONT_DOOR, m, (("ApiName", door.api_name),) if m.namespace == APIGATEWAY
                   else (("FunctionName", door.function_name),)) for m in specs]


def async_series(endpoint: str, asynchronous: bool) -> list[Series]:
    """An asynchronous endpoint's four backlog series (none for a real-time one)."""
    if not asynchronous:
        return []
    return [Series(ASYNC_QUEUE, MetricSpec(n, ns, stat), (("EndpointName", endpoint),))
            for n, (ns, stat) in ASYNC_METRICS.items()]


def period_for(interval: float) -> int:
    """The smallest period CloudWatch accepts that covers one interval (1, 5, 10, 30 or n*60 s)."""
    for p in _SHORT_PERIODS:
        if interval <= p:
            return p
    return int(-(-interval // 60) * 60)


def build_queries(endpoint: str, series: list[Series], period: int) -> list[dict[str, Any]]:
    return [{
        "Id": f"m{i}",
        "MetricStat": {
            "Metric": {"Namespace": s.metric.namespace, "MetricName": s.metric.name,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in
                                      s.dimensions or (("EndpointName", endpoint), ("VariantName", s.variant))]},
            "Period": period,
            "Stat": s.metric.stat,
        },
        "ReturnData": True,
    } for i, s in enumerate(series)]


def combine(stat: str, values: list[float]) -> float | None:
    """Several datapoints of one series in the window -> one value with the series' statistic."""
    if not values:
        return None
    if stat in ("Sum", "SampleCount"):
        return float(sum(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Average":
        return float(sum(values) / len(values))
    return float(max(values))  # Maximum, and the conservative choice for a percentile


def fetch(call: Callable[[dict[str, Any]], dict[str, Any]], endpoint: str, series: list[Series],
          start: float, end: float, period: int) -> dict[str, dict[str, float | None]]:
    """All series in as few GetMetricData calls as the 500-query limit allows (and NextToken pages).

    ``call(kwargs)`` performs one GetMetricData (with the caller's retries). Returns
    {variant: {series key: value or None}}.
    """
    out: dict[str, dict[str, float | None]] = {}
    for s in series:
        out.setdefault(s.variant, {})[s.metric.key] = None
    queries = build_queries(endpoint, series, period)
    values: dict[str, list[float]] = {}
    for first in range(0, len(queries), MAX_QUERIES):
        chunk = queries[first:first + MAX_QUERIES]
        kwargs: dict[str, Any] = {"MetricDataQueries": chunk, "StartTime": _utc(start), "EndTime": _utc(end),
                                  "ScanBy": "TimestampDescending"}
        while True:
            reply = call(kwargs)
            for result in reply.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
            token = reply.get("NextToken")
            if not token:
                break
            kwargs = {**kwargs, "NextToken": token}
    for i, s in enumerate(series):
        out[s.variant][s.metric.key] = combine(s.metric.stat, values.get(f"m{i}", []))
    return out


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
