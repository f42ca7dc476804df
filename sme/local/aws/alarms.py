"""CloudWatch in the twin, as the scaler reads it: a metric's recent statistic, and metric alarms evaluated so
their state (DescribeAlarms' StateValue) and the step-scaling policies they name act as in AWS.

AWS behaviour reproduced (CloudWatch's "Evaluating an alarm" and "Configuring how alarms treat missing data"):
an alarm looks at its last ``EvaluationPeriods`` data points and goes to ALARM when ``DatapointsToAlarm`` of them
breach the threshold by its ``ComparisonOperator``, to OK when they don't; missing data points count as
``TreatMissingData`` says (missing: all missing -> INSUFFICIENT_DATA; ignore: the state stays; breaching;
notBreaching).

The twin's time scale: one data point is one of the twin's metrics periods (``LocalAws(metrics_period=...)``,
5 s by default), not the alarm's ``Period``; so an alarm of 2 periods of 60 s decides after two flushes where
AWS takes two minutes, as the scaler's window stands in for target tracking's minutes.
"""

from __future__ import annotations

import operator
from datetime import datetime, timezone
from typing import Any, Callable

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge, "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt, "LessThanOrEqualToThreshold": operator.le,
}


def recent(backend: Any, namespace: str, name: str, dimensions: list[dict[str, str]], since: float) -> list[Any]:
    """The metric's data put after ``since`` (epoch seconds), oldest first; dimensions match exactly, as
    CloudWatch treats each combination of dimensions as its own metric."""
    wanted = frozenset((d["Name"], d["Value"]) for d in dimensions)
    found = [md for md in backend.get_all_metrics()
             if md.namespace == namespace and md.name == name and _epoch(md.timestamp) > since
             and frozenset((d.name, d.value) for d in md.dimensions) == wanted]
    return sorted(found, key=lambda md: _epoch(md.timestamp))


def statistic_since(backend: Any, spec: dict[str, Any], since: float) -> float | None:
    """A target-tracking CustomizedMetricSpecification's statistic over the data put after ``since``."""
    from sme.local.aws.patches.cloudwatch import statistic

    data = recent(backend, spec["Namespace"], spec["MetricName"], spec.get("Dimensions") or [], since)
    return statistic(spec.get("Statistic", "Average"), data) if data else None


def evaluate(backend: Any, alarm: Any, now: float, period: float) -> tuple[str, float | None]:
    """Evaluate one metric alarm at ``now``, set its state when it changes, and return (state, the newest data
    point's value or None)."""
    from sme.local.aws.patches.cloudwatch import statistic

    periods = max(1, int(alarm.evaluation_periods or 1))
    needed = int(alarm.datapoints_to_alarm or periods)
    dims = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
    data = recent(backend, alarm.namespace, alarm.metric_name, dims, now - periods * period - period / 2)
    points = [statistic(alarm.statistic or "Average", [md]) for md in data[-periods:]]
    values = [v for v in points if v is not None]
    compare = COMPARISONS.get(alarm.comparison_operator)
    if compare is None:
        return alarm.state_value, None  # anomaly-detection comparisons: not evaluated by the twin
    breaching = sum(1 for v in values if compare(v, float(alarm.threshold)))
    missing = periods - len(values)
    state = _state(breaching, missing, needed, alarm.treat_missing_data or "missing", alarm.state_value)
    if state != alarm.state_value:
        reason = (f"Threshold Crossed: {breaching} out of the last {periods} datapoints "
                  f"{'were' if state == 'ALARM' else 'were not'} {alarm.comparison_operator} the threshold "
                  f"({float(alarm.threshold):g})")
        backend.set_alarm_state(alarm.name, reason, "{}", state)
    return state, values[-1] if values else None


def _state(breaching: int, missing: int, needed: int, treat: str, current: str) -> str:
    if treat == "breaching":
        breaching += missing
    if breaching >= needed:
        return "ALARM"
    if missing and not breaching and treat in ("missing", "ignore") and missing >= needed:
        return current if treat == "ignore" else "INSUFFICIENT_DATA"  # nothing to judge by
    return "OK"


def alarms_acting_on(backend: Any, policy_arn: str) -> list[Any]:
    """The metric alarms whose AlarmActions name this scaling policy."""
    return [a for a in list(backend.alarms.values())
            if policy_arn in (a.alarm_actions or []) and a.actions_enabled and a.metric_name]


def _epoch(stamp: datetime) -> float:
    return (stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp).timestamp()
