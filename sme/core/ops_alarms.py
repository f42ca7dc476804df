"""Guarded updates: the auto-rollback alarms sme creates, and UpdateEndpoint with a DeploymentConfig.

The update step reuses the base handler (``ops_sagemaker.update_endpoint``: history, records) and only
adds the extra arguments through ``ctx.options["update_endpoint_kwargs"]``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sme.aws import AwsError, aws_call, is_not_found
from sme.core import ops_sagemaker
from sme.core.executor import ExecContext, handles
from sme.core.extras import AlarmSpec
from sme.core.models import Step
from sme.core.plan_extras import UpdateCall, alarm_kwargs
from sme.core.sweeper import Kind, register
from sme.state import ResourceRecord


@handles("put_alarm")
def put_alarm(ctx: ExecContext, step: Step) -> None:
    alarm: AlarmSpec = step.params
    cw = ctx.aws.client("cloudwatch")
    with aws_call("cloudwatch:PutMetricAlarm", alarm.name):
        cw.put_metric_alarm(**alarm_kwargs(alarm), Tags=ctx.tags)
    arn = ""
    with aws_call("cloudwatch:DescribeAlarms", alarm.name):
        found = cw.describe_alarms(AlarmNames=[alarm.name])["MetricAlarms"]
    if found:
        arn = found[0].get("AlarmArn", "")
    ctx.record("alarm", alarm.name, arn)


@handles("update_endpoint_guarded")
def update_endpoint_guarded(ctx: ExecContext, step: Step) -> None:
    call: UpdateCall = step.params
    kwargs: dict[str, Any] = {}
    if call.retain:
        kwargs["RetainAllVariantProperties"] = True
    if call.deployment_config:
        kwargs["DeploymentConfig"] = json.loads(call.deployment_config)
    saved = ctx.options.get("update_endpoint_kwargs")
    ctx.options["update_endpoint_kwargs"] = {**(saved or {}), **kwargs}
    try:
        ops_sagemaker.update_endpoint(ctx, replace(step, op="update_endpoint", params=call.config))
    finally:
        if saved is None:
            ctx.options.pop("update_endpoint_kwargs", None)
        else:
            ctx.options["update_endpoint_kwargs"] = saved


def delete_alarm(aws: Any, rec: ResourceRecord) -> bool:
    cw = aws.client("cloudwatch")
    try:
        with aws_call("cloudwatch:DescribeAlarms", rec.name):
            if not cw.describe_alarms(AlarmNames=[rec.name])["MetricAlarms"]:
                return False
        with aws_call("cloudwatch:DeleteAlarms", rec.name):
            cw.delete_alarms(AlarmNames=[rec.name])
        return True
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return False
        raise


register(Kind("alarm", 25, delete_alarm))
