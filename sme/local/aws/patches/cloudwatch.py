"""CloudWatch: statistics computed as AWS computes them, for the twin's metrics and for any a client puts.

AWS behaviour reproduced (GetMetricData, GetMetricStatistics, PutMetricData and ListMetrics API references):

- percentiles: GetMetricData answers a ``Stat`` of ``p50``, ``p99``, ``p99.9`` (p0 to p100), and
  GetMetricStatistics answers ``ExtendedStatistics`` in each datapoint (moto answers an HTML 500 and drops
  them). CloudWatch needs raw values for a percentile: a statistic set (StatisticValues) counts only when
  its SampleCount is 1 or its Minimum equals its Maximum, and no percentile is given over negative values;
- PutMetricData's ``Values`` with ``Counts`` are one distribution (AWS takes up to 150 distinct values per
  datum), kept as such: moto stored one object per count;
- datapoints aggregate periods that start on the period boundary: the start time is rounded down to the
  whole minute, or, for a period of 1, 5, 10, 20 or 30 s, to that division of the minute; buckets follow
  every ``Period`` seconds from there (moto started them at the first datapoint or the raw start time);
- a query names a metric's dimensions exactly: CloudWatch treats each combination as its own metric;
- GetMetricStatistics takes Statistics or ExtendedStatistics, not both;
- ListMetrics lists each metric (namespace, name, dimensions) once, however often it was put.

Statistics the twin does not compute (tm99, wm99, IQM, PR(...), ...) answer a 400 that says so.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

PERCENTILE = re.compile(r"^p(\d{1,3}(\.\d+)?)$")
BASIC = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
RETENTION = timedelta(days=15)  # how long CloudWatch keeps per-minute data points
_INSTALLED = False
_DISTRIBUTION: Any = None  # the Distribution datum class, defined by install()


def install() -> None:
    """Patch moto's CloudWatch backend and responses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum
    from moto.cloudwatch.responses import CloudWatchResponse

    class Distribution(MetricAggregatedDatum):
        """A datum put with Values and Counts: moto's statistic set, plus the values for percentiles."""

        def __init__(self, namespace: str, metric: dict[str, Any]):
            values = [float(v) for v in metric["Values"]]
            counts = [float(c) for c in (metric.get("Counts") or [1.0] * len(values))]
            super().__init__(namespace, metric["MetricName"], min(values), max(values), sum(counts),
                             sum(v * c for v, c in zip(values, counts)), metric.get("Dimensions", []),
                             metric.get("Timestamp"), metric.get("Unit"))
            self.distribution = list(zip(values, counts))

    orig_put = CloudWatchBackend.put_metric_data
    orig_get_metric_data = CloudWatchBackend.get_metric_data

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        plain = [m for m in metric_data if not m.get("Values")]
        spread = [m for m in metric_data if m.get("Values")]
        for i, metric in enumerate(spread):
            self._validate_parameters_put_metric_data(metric, i + 1)
        orig_put(self, namespace, plain)
        self.metric_data.extend(Distribution(namespace, m) for m in spread)

    def get_metric_data(self: Any, queries: list[dict[str, Any]], start_time: datetime, end_time: datetime,
                        scan_by: str = "TimestampDescending") -> list[dict[str, Any]]:
        others = [q for q in queries if "MetricStat" not in q]
        answered = {r["id"]: r for r in orig_get_metric_data(self, others, start_time, end_time, scan_by)}
        for query in queries:
            if "MetricStat" in query:
                answered[query["Id"]] = _stat_result(self, query, start_time, end_time, scan_by)
        return [answered[q["Id"]] for q in queries if q["Id"] in answered]

    def get_filtered_metrics(self: Any, metric_name: str, namespace: str, dimensions: list[dict[str, str]]) -> list:
        unique: dict[tuple, Any] = {}
        for md in self.get_all_metrics():
            if md.filter(namespace=namespace, name=metric_name, dimensions=dimensions):
                unique.setdefault((md.namespace, md.name, _dims_of(md)), md)
        return list(unique.values())

    global _DISTRIBUTION
    _DISTRIBUTION = Distribution
    CloudWatchBackend.put_metric_data = put_metric_data
    CloudWatchBackend.get_metric_data = get_metric_data
    CloudWatchBackend.get_filtered_metrics = get_filtered_metrics
    CloudWatchResponse.get_metric_statistics = _get_metric_statistics_response
    _INSTALLED = True


def roll_up(backend: Any, namespaces: tuple[str, ...], before: datetime) -> None:
    """Merge the namespaces' data points older than ``before`` into one per metric and minute, and drop those
    older than CloudWatch's retention. A merged point holds every value with its count, so each statistic
    (percentiles too) of a period of a minute or more is what it was. Statistic sets stay as they were."""
    install()
    snapshot = backend.metric_data
    seen = len(snapshot)
    kept: list[Any] = []
    minutes: dict[tuple, list[tuple[float, float]]] = {}
    firsts: dict[tuple, Any] = {}
    oldest = before - RETENTION
    for md in snapshot[:seen]:
        stamp = _utc(md.timestamp)
        mergeable = hasattr(md, "value") or hasattr(md, "distribution")
        if md.namespace not in namespaces or stamp >= before or not mergeable or getattr(md, "rolled_up", False):
            if not (md.namespace in namespaces and stamp < oldest):
                kept.append(md)
            continue
        key = (md.namespace, md.name, _dims_of(md), md.unit, stamp.replace(second=0, microsecond=0))
        minutes.setdefault(key, []).extend(md.distribution if hasattr(md, "distribution") else [(md.value, 1.0)])
        firsts.setdefault(key, md)
    rolled = [_merged(firsts[key], key[4], pairs) for key, pairs in minutes.items() if key[4] >= oldest]
    backend.metric_data = rolled + kept + backend.metric_data[seen:]  # what was put meanwhile stays


def _merged(first: Any, minute: datetime, pairs: list[tuple[float, float]]) -> Any:
    counts: dict[float, float] = {}
    for value, count in pairs:
        counts[value] = counts.get(value, 0.0) + count
    dims = [{"Name": d.name, "Value": d.value} for d in first.dimensions]
    stamp = minute if first.timestamp.tzinfo else minute.replace(tzinfo=None)  # as moto keeps its timestamps
    datum = _DISTRIBUTION(first.namespace, {"MetricName": first.name, "Dimensions": dims, "Unit": first.unit,
                                            "Timestamp": stamp, "Values": list(counts),
                                            "Counts": list(counts.values())})
    datum.rolled_up = True
    return datum


def _utc(stamp: datetime) -> datetime:
    from datetime import timezone

    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)


def _get_metric_statistics_response(self: Any) -> Any:
    from moto.cloudwatch.exceptions import InvalidParameterCombination
    from moto.core.responses import ActionResult

    statistics = self._get_param("Statistics", []) or []
    extended = self._get_param("ExtendedStatistics", []) or []
    if bool(statistics) == bool(extended):
        raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics, but not both.")
    for stat in [*statistics, *extended]:
        _check_stat(stat)
    period = self._get_int_param("Period")
    buckets = _buckets(self.cloudwatch_backend, self._get_param("Namespace"), self._get_param("MetricName"),
                       self._get_param("Dimensions", []) or [], self._get_param("Unit"),
                       self._get_param("StartTime"), self._get_param("EndTime"), period)
    datapoints = []
    for start, data in buckets.items():
        point: dict[str, Any] = {"Timestamp": start, "Unit": next((d.unit for d in data if d.unit), "None")}
        point.update({s: v for s in statistics if (v := statistic(s, data)) is not None})
        found = {p: v for p in extended if (v := statistic(p, data)) is not None}
        if found:
            point["ExtendedStatistics"] = found
        datapoints.append(point)
    return ActionResult({"Label": self._get_param("MetricName"), "Datapoints": datapoints})


def _stat_result(backend: Any, query: dict[str, Any], start: datetime, end: datetime, scan_by: str) -> dict:
    stat_query = query["MetricStat"]
    metric, stat = stat_query["Metric"], stat_query["Stat"]
    _check_stat(stat)
    buckets = _buckets(backend, metric["Namespace"], metric["MetricName"], metric.get("Dimensions", []),
                       stat_query.get("Unit"), start, end, int(stat_query["Period"]))
    points = [(t, v) for t, data in sorted(buckets.items()) if (v := statistic(stat, data)) is not None]
    if scan_by != "TimestampAscending":
        points.reverse()
    return {"id": query["Id"], "label": query.get("Label") or f"{metric['MetricName']} {stat}",
            "values": [v for _, v in points], "timestamps": [t for t, _ in points], "status_code": "Complete"}


def _check_stat(stat: str) -> None:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    match = PERCENTILE.match(stat)
    if stat in BASIC or (match and float(match.group(1)) <= 100):
        return
    raise InvalidParameterValue(f"The statistic {stat} is not one the local twin computes: use SampleCount, "
                                "Average, Sum, Minimum, Maximum or a percentile p0 to p100 (such as p99).")


def rounded_start(start: datetime, period: int) -> datetime:
    """CloudWatch's rounding of a StartTime: to the minute, or to the period's division of it (< 60 s)."""
    step = period if period < 60 and 60 % period == 0 else 60
    floor = start.replace(microsecond=0)
    return floor - timedelta(seconds=floor.second % step)


def _buckets(backend: Any, namespace: str, name: str, dimensions: list[dict[str, str]], unit: str | None,
             start: datetime, end: datetime, period: int) -> dict[datetime, list[Any]]:
    """The metric's data in [rounded start, end), grouped by the period each datum falls in."""
    origin = rounded_start(start, period)
    wanted = frozenset((d["Name"], d["Value"]) for d in dimensions)
    out: dict[datetime, list[Any]] = {}
    for md in backend.get_all_metrics():
        if md.namespace != namespace or md.name != name or _dims_of(md) != wanted or (unit and md.unit != unit):
            continue
        if not origin <= md.timestamp < end:
            continue
        index = int((md.timestamp - origin).total_seconds() // period)
        out.setdefault(origin + timedelta(seconds=index * period), []).append(md)
    return out


def _dims_of(md: Any) -> frozenset:
    return frozenset((d.name, d.value) for d in md.dimensions)


def statistic(stat: str, data: list[Any]) -> float | None:
    """One statistic over the data of one period (moto's single values, statistic sets and distributions)."""
    singles = [md.value for md in data if hasattr(md, "value")]
    sets = [md for md in data if hasattr(md, "sample_count")]
    count = len(singles) + sum(s.sample_count for s in sets)
    if not count:
        return None
    if stat == "SampleCount":
        return float(count)
    total = sum(singles) + sum(s.sum for s in sets)
    if stat in ("Sum", "Average"):
        return float(total) if stat == "Sum" else float(total / count)
    if stat in ("Minimum", "Maximum"):
        pick = min if stat == "Minimum" else max
        return float(pick(singles + [s.min if stat == "Minimum" else s.max for s in sets]))
    return percentile(float(stat[1:]), _raw_values(singles, sets))


def _raw_values(singles: list[float], sets: list[Any]) -> list[tuple[float, float]]:
    """(value, count) pairs CloudWatch can take a percentile of; a statistic set only if it holds one value."""
    pairs = [(v, 1.0) for v in singles]
    for s in sets:
        if hasattr(s, "distribution"):
            pairs += s.distribution
        elif s.sample_count == 1 or s.min == s.max:
            pairs.append((s.min, s.sample_count))
    return pairs


def percentile(p: float, pairs: list[tuple[float, float]]) -> float | None:
    """The nearest-rank percentile of a weighted sample: the least value with at least p% at or below it."""
    if not pairs or any(v < 0 for v, _ in pairs):
        return None
    pairs = sorted(pairs)
    total = sum(c for _, c in pairs)
    rank = max(1.0, math.ceil(p / 100.0 * total))
    seen = 0.0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return float(value)
    return float(pairs[-1][0])
