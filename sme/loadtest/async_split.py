"""Queue time apart from processing time for an asynchronous endpoint, from the truest source AWS has.

Per request, AWS says only when SageMaker received it and when its result was ready (the SNS notification's
``receivedTime`` and ``eventTime``: ``async_target.Split``): queue and processing are one span there. It tells
them apart only in CloudWatch ("Monitor asynchronous endpoints"), per variant and per minute, as aggregates of
every request processed in the minute:

- ``TimeInBacklog`` (microseconds): how long a request waited before processing began;
- ``ModelLatency`` (microseconds): the model's own time;
- ``TotalProcessingTime`` (milliseconds): receipt to the end of processing, backlog, download, upload and
  notification included;
- ``InvocationsProcesssed`` (AWS's spelling): how many requests those minutes processed.

sme reads them over the run's minutes with Sum, SampleCount and Maximum (exact means, and maxima; no
percentiles: CloudWatch keeps none per request) once ``InvocationsProcesssed`` counts every request the run
saw finish, waiting at most ``SME_CLOUDWATCH_WAIT_S`` (as for serverless cold starts). The minutes may also
hold other clients' requests to the same endpoint: the section says so.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timezone
from typing import Any, Callable

from sme.loadtest.serverless import DEFAULT_WAIT_S, POLL_S, WAIT_ENV

METRICS = (("queue", "TimeInBacklog", 1e-3), ("model", "ModelLatency", 1e-3),
           ("total_processing", "TotalProcessingTime", 1.0))  # (part, metric, factor to milliseconds)
SOURCE = ("CloudWatch AWS/SageMaker per-minute aggregates over the run's minutes (TimeInBacklog, ModelLatency, "
          "TotalProcessingTime: Sum/SampleCount/Maximum): means and maxima over every request processed in "
          "those minutes, other clients' included; not per request")


def variants(sagemaker: Any, endpoint: str) -> list[str]:
    return [v["VariantName"] for v in sagemaker.describe_endpoint(EndpointName=endpoint).get("ProductionVariants")
            or ()]


def _queries(endpoint: str, variant_names: list[str], period: int) -> list[dict[str, Any]]:
    out = []
    for i, variant in enumerate(variant_names):
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        wanted = [(f"{part}_{stat.lower()}_{i}", name, stat) for part, name, _ in METRICS
                  for stat in ("Sum", "SampleCount", "Maximum")] + [(f"processed_sum_{i}", "InvocationsProcesssed",
                                                                      "Sum")]
        out += [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": dims},
            "Period": period, "Stat": stat}} for qid, name, stat in wanted]
    return out


def read(cloudwatch: Any, endpoint: str, variant_names: list[str], started_at: float, now: float) -> dict[str, Any]:
    """The run's minutes in one GetMetricData call: per part, its total, sample count and maximum."""
    start = math.floor(started_at / 60) * 60  # CloudWatch's buckets start on the minute
    end = math.ceil((now + 1) / 60) * 60
    reply = cloudwatch.get_metric_data(MetricDataQueries=_queries(endpoint, variant_names, end - start),
                                       StartTime=datetime.fromtimestamp(start, timezone.utc),
                                       EndTime=datetime.fromtimestamp(end, timezone.utc))
    totals: dict[str, Any] = {}
    for result in reply["MetricDataResults"]:
        key = result["Id"].rsplit("_", 1)[0]
        values = result.get("Values") or []
        if key.endswith("_maximum"):
            totals[key] = max([totals.get(key) or 0.0, *values]) if values else totals.get(key)
        else:
            totals[key] = totals.get(key, 0.0) + sum(values)
    return totals


def section(cloudwatch: Any, endpoint: str, variant_names: list[str], summary: dict[str, Any],
            say: Callable[[str], None], clock: Callable[[], float] = time.time,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The ``per_minute`` part of the ``async`` section, once CloudWatch has counted the run's finished requests."""
    finished = summary["async"]["succeeded"] + summary["async"]["failed"]
    wait_s = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))
    deadline = clock() + wait_s
    say(f"reading {endpoint}'s TimeInBacklog and ModelLatency from CloudWatch (waiting up to {wait_s:g} s for its "
        f"InvocationsProcesssed to count this run's {finished} finished requests)")
    while True:
        totals = read(cloudwatch, endpoint, variant_names, summary["started_at"], clock())
        if totals.get("processed_sum", 0) >= finished or clock() >= deadline:
            break
        sleep(POLL_S)
    return _section(totals, finished)


def _section(totals: dict[str, Any], finished: int) -> dict[str, Any]:
    out: dict[str, Any] = {"source": SOURCE, "requests_processed": int(totals.get("processed_sum", 0)),
                           "complete": totals.get("processed_sum", 0) >= finished}
    for part, _, factor in METRICS:
        n = totals.get(f"{part}_samplecount", 0)
        top = totals.get(f"{part}_maximum")
        out[f"{part}_ms"] = {"mean": round(totals[f"{part}_sum"] / n * factor, 3) if n else None,
                             "max": None if top is None or not n else round(top * factor, 3), "samples": int(n)}
    return out


def render(console: Any, section_: dict[str, Any]) -> None:
    """Under the SLO table: the per-request split (notifications) and the per-minute one (CloudWatch)."""
    per_request, per_minute = section_.get("per_request"), section_.get("per_minute")
    if per_request:
        parts = ", ".join(f"{label} {per_request[f'{part}_ms']['mean']:g} ms" for part, label in (
            ("to_sagemaker", "to SageMaker"), ("in_sagemaker", "in SageMaker (queue + processing)"),
            ("notification", "notification")))
        console.print(f"async, per request ({per_request['requests']} notifications), means: {parts}; "
                      f"end to end {per_request['e2e_mean_ms']:g} ms", markup=False)
    if per_minute and per_minute["queue_ms"]["samples"]:
        q, m, t = per_minute["queue_ms"], per_minute["model_ms"], per_minute["total_processing_ms"]
        console.print(f"async, per minute (CloudWatch, not per request): queue mean {q['mean']:g} ms (max "
                      f"{q['max']:g}), model mean {m['mean']:g} ms (max {m['max']:g}), receipt to processed mean "
                      f"{t['mean']:g} ms", markup=False)
    if per_minute and not per_minute["complete"]:
        console.print(f"  CloudWatch counted {per_minute['requests_processed']} processed requests when sme stopped "
                      "waiting: the per-minute figures are partial", markup=False)
