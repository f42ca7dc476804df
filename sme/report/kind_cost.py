"""What a run cost for each endpoint kind, from that kind's own price dimensions. Pure functions.

- Instances (real-time, and asynchronous endpoints): instance-hours. An asynchronous variant scaled to zero
  instances costs nothing while it has none: its cost is the sum over time of instances x hours, so the
  minutes at zero add nothing (``instance_cost`` over (minutes, instance count) spans).
- Serverless (on demand): compute per GB-second (the variant's memory x the inference duration AWS bills,
  per millisecond) plus data processed per GB, in and out.
- Serverless with provisioned concurrency: the provisioned concurrency per GB-second for as long as it is
  configured (quoted per hour as well), its inference duration per GB-second at its own rate, plus data.

The rates come from the dated table (``sme/data/prices.json``, ``serverless``), which says its date; a rate
the table does not have is None and the cost is then unknown, never guessed. Not yet looked up: the AWS
Pricing API's serverless products (product family "ML Serverless": usage types
``<REGION>-ServerlessInf:Mem-<N>GB``, ``-ProvisionedConcurrency:Usage-<N>GB`` and
``-ProvisionedConcurrency:Mem-<N>GB``; data ``Data-Bytes-In``/``Data-Bytes-Out`` of operation Invoke-Endpoint,
as infracost's SageMaker resource filters them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

GB = 1024 ** 3


@dataclass(frozen=True)
class ServerlessRates:
    """USD rates for one region; None where the source has no rate."""

    compute_per_gb_second: float | None
    data_in_per_gb: float | None
    data_out_per_gb: float | None
    provisioned_per_gb_second: float | None = None
    provisioned_compute_per_gb_second: float | None = None
    source: str = ""


@dataclass(frozen=True)
class ServerlessUsage:
    memory_mb: int
    inference_seconds: float  # on-demand inference duration (what AWS bills per millisecond)
    bytes_in: int
    bytes_out: int
    provisioned_concurrency: int = 0
    provisioned_seconds: float = 0.0  # how long the provisioned concurrency was configured
    provisioned_inference_seconds: float = 0.0  # inference duration served by provisioned concurrency


@dataclass(frozen=True)
class CostLine:
    dimension: str
    quantity: float
    unit: str
    usd: float | None  # None: no rate for it


def serverless_cost(usage: ServerlessUsage, rates: ServerlessRates) -> list[CostLine]:
    gb = usage.memory_mb / 1024.0
    lines = [_line("compute", gb * usage.inference_seconds, "GB-second", rates.compute_per_gb_second),
             _line("data processed in", usage.bytes_in / GB, "GB", rates.data_in_per_gb),
             _line("data processed out", usage.bytes_out / GB, "GB", rates.data_out_per_gb)]
    if usage.provisioned_concurrency:
        lines += [_line("provisioned concurrency", usage.provisioned_concurrency * gb * usage.provisioned_seconds,
                        "GB-second", rates.provisioned_per_gb_second),
                  _line("provisioned concurrency compute", gb * usage.provisioned_inference_seconds, "GB-second",
                        rates.provisioned_compute_per_gb_second)]
    return lines


def provisioned_per_hour(memory_mb: int, provisioned_concurrency: int, rates: ServerlessRates) -> float | None:
    """What keeping the provisioned concurrency costs per hour, requests aside."""
    if rates.provisioned_per_gb_second is None:
        return None
    return provisioned_concurrency * memory_mb / 1024.0 * 3600.0 * rates.provisioned_per_gb_second


def instance_cost(spans: Iterable[tuple[float, int]], usd_per_hour: float | None) -> CostLine:
    """Instance-hours over (minutes, instance count) spans: a span at zero instances (an asynchronous
    endpoint scaled in to zero) adds no hours and costs nothing."""
    hours = sum(minutes * count for minutes, count in spans) / 60.0
    return _line("instances", hours, "instance-hour", usd_per_hour)


def total(lines: Iterable[CostLine]) -> float | None:
    """The sum, or None when any line has no rate (a partial sum would read as the whole)."""
    lines = list(lines)
    if any(line.usd is None for line in lines):
        return None
    return sum(line.usd for line in lines)  # type: ignore[misc]


def _line(dimension: str, quantity: float, unit: str, rate: float | None) -> CostLine:
    return CostLine(dimension, quantity, unit, None if rate is None else quantity * rate)


def table_rates(table: dict, region: str) -> ServerlessRates:
    """The dated table's serverless rates for a region (its default region's, said so, when it has none)."""
    section = table.get("serverless") or {}
    regions = section.get("regions") or {}
    rates = regions.get(region) or regions.get(section.get("default_region", "us-east-1")) or {}
    where = region if region in regions else f"{section.get('default_region', 'us-east-1')} rates for {region}"
    return ServerlessRates(rates.get("compute_per_gb_second"), rates.get("data_in_per_gb"),
                           rates.get("data_out_per_gb"), rates.get("provisioned_per_gb_second"),
                           rates.get("provisioned_compute_per_gb_second"),
                           f"sme's price table ({table.get('date')}, approximate; {where})")
