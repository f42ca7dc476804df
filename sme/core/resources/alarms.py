"""CloudWatch: the alarms sme creates to roll a guarded update back (``endpoint.update.alarms: auto``)."""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import AlarmSpec


def alarm_kwargs(alarm: AlarmSpec) -> dict[str, Any]:
    return {"AlarmName": alarm.name, "AlarmDescription": alarm.description, "MetricName": alarm.metric,
            "Namespace": alarm.namespace, "Statistic": alarm.statistic, "Period": 60, "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "Threshold": alarm.threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
            "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions]}


def put_alarm(ctx: ExecContext, step: steps.PutAlarm) -> None:
    alarm = step.alarm
    cw = ctx.aws.client("cloudwatch")
    with aws_call("cloudwatch:PutMetricAlarm", alarm.name):
        cw.put_metric_alarm(**alarm_kwargs(alarm), Tags=ctx.tags)
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
