"""Latencies as the twin publishes them: rounded to a few significant digits and sent as Values/Counts
(CloudWatch's statistic sets cannot give percentiles), so a period's data stays small whatever the rate."""

from __future__ import annotations

import math
from collections import Counter

SIGNIFICANT_DIGITS = 3  # a latency is kept to 3 significant digits: within 0.5%, a bounded set per period
VALUES_PER_DATUM = 150  # PutMetricData's limit of distinct Values in one datum


def rounded(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """A latency to ``digits`` significant digits: a period's distinct values stay few whatever the rate."""
    if value <= 0:
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(value))))


def distribution_data(name: str, dims: list, values: Counter, unit: str = "Microseconds") -> list[dict]:
    """PutMetricData entries (Values with Counts, at most 150 distinct values each) for one period."""
    items = sorted(values.items())
    return [{"MetricName": name, "Dimensions": dims, "Unit": unit,
             "Values": [float(v) for v, _ in items[i:i + VALUES_PER_DATUM]],
             "Counts": [float(c) for _, c in items[i:i + VALUES_PER_DATUM]]}
            for i in range(0, len(items), VALUES_PER_DATUM)]
