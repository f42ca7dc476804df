"""CloudWatch metrics of the front door (API Gateway and its Lambda proxy), from the requests the twin served.

As AWS publishes them, every ``period`` seconds that saw traffic:

- AWS/ApiGateway, by ApiName and by ApiName and Stage: Count, 4XXError and 5XXError (one value per
  request, 1 or 0: Sum is the count, Average the rate, as in AWS), Latency and IntegrationLatency
  (milliseconds, as distributions, so that percentiles work);
- AWS/Lambda, by FunctionName: Invocations, Errors (Sum), Duration (milliseconds, a distribution) and
  Throttles. The twin queues a request while every environment of a function is busy, where Lambda
  would throttle past its concurrency limit, so Throttles stays 0.

Values are kept as counts of rounded values (3 significant digits): a period costs the same whatever the rate.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sme.local.aws.metric_data import distribution_data, rounded


@dataclass
class ApiWindow:
    count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    latency_ms: Counter = field(default_factory=Counter)
    integration_ms: Counter = field(default_factory=Counter)


@dataclass
class FunctionWindow:
    invocations: int = 0
    errors: int = 0
    duration_ms: Counter = field(default_factory=Counter)


class FrontDoorMetrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.apis: dict[tuple[str, str, str, str], ApiWindow] = defaultdict(ApiWindow)
        self.functions: dict[tuple[str, str, str], FunctionWindow] = defaultdict(FunctionWindow)

    def observe(self, served: Any) -> None:
        """One request (an ``execute_api.Served``)."""
        with self.lock:
            w = self.apis[(served.account, served.region, served.api_name, served.stage)]
            w.count += 1
            w.errors_4xx += 400 <= served.status < 500
            w.errors_5xx += served.status >= 500
            w.latency_ms[rounded(served.latency_ms)] += 1
            if served.integration_ms is not None:
                w.integration_ms[rounded(served.integration_ms)] += 1
            if served.function:
                f = self.functions[(served.account, served.region, served.function)]
                f.invocations += 1
                f.errors += served.function_error
                f.duration_ms[rounded(served.integration_ms or 0.0)] += 1

    def flush(self) -> list[tuple[str, str]]:
        """Publish what the last period saw; the (account, region) pairs published to."""
        from moto.cloudwatch.models import cloudwatch_backends

        with self.lock:
            apis, self.apis = self.apis, defaultdict(ApiWindow)
            functions, self.functions = self.functions, defaultdict(FunctionWindow)
        for (account, region, api, stage), w in apis.items():
            backend = cloudwatch_backends[account][region]
            for dims in ([{"Name": "ApiName", "Value": api}],
                         [{"Name": "ApiName", "Value": api}, {"Name": "Stage", "Value": stage}]):
                backend.put_metric_data("AWS/ApiGateway", _api_data(dims, w))
        for (account, region, function), f in functions.items():
            dims = [{"Name": "FunctionName", "Value": function}]
            cloudwatch_backends[account][region].put_metric_data("AWS/Lambda", [
                {"MetricName": "Invocations", "Dimensions": dims, "Value": float(f.invocations), "Unit": "Count"},
                {"MetricName": "Errors", "Dimensions": dims, "Value": float(f.errors), "Unit": "Count"},
                {"MetricName": "Throttles", "Dimensions": dims, "Value": 0.0, "Unit": "Count"},
                *distribution_data("Duration", dims, f.duration_ms, "Milliseconds")])
        return sorted({(k[0], k[1]) for k in apis} | {(k[0], k[1]) for k in functions})


def _api_data(dims: list[dict], w: ApiWindow) -> list[dict]:
    def per_request(name: str, errors: int) -> dict:
        ok = w.count - errors
        values = [(0.0, ok), (1.0, errors)] if name != "Count" else [(1.0, w.count)]
        kept = [(v, c) for v, c in values if c]
        return {"MetricName": name, "Dimensions": dims, "Unit": "Count",
                "Values": [v for v, _ in kept], "Counts": [float(c) for _, c in kept]}

    return [per_request("Count", 0), per_request("4XXError", w.errors_4xx), per_request("5XXError", w.errors_5xx),
            *distribution_data("Latency", dims, w.latency_ms, "Milliseconds"),
            *distribution_data("IntegrationLatency", dims, w.integration_ms, "Milliseconds")]
