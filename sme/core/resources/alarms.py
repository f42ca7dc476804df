"""CloudWatch: the alarms sme creates to roll a guarded update back (``endpoint.update.alarms: auto``)."""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import AlarmSpec


def alarm_kwargs(alarm: AlarmSpec) -> dict[str, Any]:
    return {"AlarmName": alarm.name, "AlarmDescription": alarm.description, "MetricName": alarm.metric,
            "Namespace": alarm.namespace, "Statistic": alarm.statistic, "Period": alarm.period,
            "EvaluationPeriods": alarm.evaluation_periods, "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "Threshold": alarm.threshold, "ComparisonOperator": alarm.comparison,
            "TreatMissingData": alarm.treat_missing_data,
            "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions]}


def put_alarm(ctx: ExecContext, step: steps.PutAlarm) -> None:
    put_metric_alarm(ctx, step.alarm)


def put_metric_alarm(ctx: ExecContext, alarm: AlarmSpec, actions: tuple[str, ...] = ()) -> None:
    """Create or replace the alarm (with these alarm actions), and record it."""
    cw = ctx.aws.client("cloudwatch")
    extra: dict[str, Any] = {"AlarmActions": list(actions)} if actions else {}
    with aws_call("cloudwatch:PutMetricAlarm", alarm.name):
        cw.put_metric_alarm(**alarm_kwargs(alarm), **extra, Tags=ctx.tags)
    with aws_call("cloudwatch:DescribeAlarms", alarm.name):
        found = cw.describe_alarms(AlarmNames=[alarm.name])["MetricAlarms"]
    ctx.record("alarm", alarm.name, found[0].get("AlarmArn", "") if found else "")


def delete_alarm(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    cw = ctx.aws.client("cloudwatch")
    found = if_found("cloudwatch:DescribeAlarms", name, lambda: cw.describe_alarms(AlarmNames=[name]))
    if not found or not found["MetricAlarms"]:
        return False
    with aws_call("cloudwatch:DeleteAlarms", name):
        cw.delete_alarms(AlarmNames=[name])
    return True


HANDLERS = {steps.PutAlarm: put_alarm}
DELETERS = {"alarm": Deleter(25, delete_alarm)}
