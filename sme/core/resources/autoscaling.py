"""Application Auto Scaling: a variant's scalable target, its target-tracking policy and, for an asynchronous
endpoint that scales to zero, the step-scaling policy (and its CloudWatch alarm) that wakes it.

Targets and policies are recorded as they are made; teardown removes them (orders 20/21) before the
endpoint (40), because a target left on a deleted variant blocks a later endpoint of the same name.
"""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.names import SCALABLE_DIMENSION
from sme.core.resources.alarms import put_metric_alarm

NAMESPACE = "sagemaker"


def register_scaling(ctx: ExecContext, step: steps.RegisterScaling) -> None:
    spec = step.scaling
    with aws_call("application-autoscaling:RegisterScalableTarget", spec.resource_id):
        reply = ctx.aws.client("application-autoscaling").register_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=spec.resource_id, ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=spec.min, MaxCapacity=spec.max)
    ctx.record("scalable-target", spec.resource_id, reply.get("ScalableTargetARN", ""), min=spec.min, max=spec.max)


def put_scaling_policy(ctx: ExecContext, step: steps.PutScalingPolicy) -> None:
    spec = step.scaling
    _put_policy(ctx, spec.policy_name, spec.resource_id, "TargetTrackingScaling", spec.policy_config)


def put_wake_policy(ctx: ExecContext, step: steps.PutWakePolicy) -> None:
    """The step-scaling policy, then the alarm whose action is that policy (its ARN is known only now)."""
    spec, wake = step.scaling, step.scaling.wake
    assert wake is not None, "the planner puts a wake-up policy only for a spec that has one"
    arn = _put_policy(ctx, wake.policy_name, spec.resource_id, "StepScaling", wake.policy_config)
    put_metric_alarm(ctx, wake.alarm, actions=(arn,))


def _put_policy(ctx: ExecContext, name: str, resource_id: str, kind: str, config: dict[str, Any]) -> str:
    """PutScalingPolicy (``kind``: TargetTrackingScaling or StepScaling) and record it; returns its ARN."""
    with aws_call("application-autoscaling:PutScalingPolicy", name):
        reply = ctx.aws.client("application-autoscaling").put_scaling_policy(
            PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION, PolicyType=kind, **{f"{kind}PolicyConfiguration": config})
    ctx.record("scaling-policy", name, reply.get("PolicyARN", ""), resource_id=resource_id)
    return reply.get("PolicyARN", "")


def deregister_scaling(ctx: ExecContext, step: steps.DeregisterScaling) -> None:
    for name in remove_target(ctx, step.name):
        ctx.state.forget("scaling-policy", name)
    ctx.forget("scalable-target", step.name)


def remove_target(ctx: ExecContext, resource_id: str) -> list[str]:
    """Delete the target's policies, then the target; return the policy names deleted."""
    client = ctx.aws.client("application-autoscaling")
    with aws_call("application-autoscaling:DescribeScalingPolicies", resource_id):
        policies = client.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=resource_id,
                                                    ScalableDimension=SCALABLE_DIMENSION)["ScalingPolicies"]
    for p in policies:
        delete_policy(ctx, p["PolicyName"], {"resource_id": resource_id})
    if_found("application-autoscaling:DeregisterScalableTarget", resource_id, lambda: client.deregister_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION))
    return [p["PolicyName"] for p in policies]


def delete_policy(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    client = ctx.aws.client("application-autoscaling")
    return if_found("application-autoscaling:DeleteScalingPolicy", name, lambda: client.delete_scaling_policy(
        PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=extra.get("resource_id", ""),
        ScalableDimension=SCALABLE_DIMENSION)) is not None


def delete_target(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    client = ctx.aws.client("application-autoscaling")
    with aws_call("application-autoscaling:DescribeScalableTargets", name):
        found = client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[name],
                                                 ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    if not found:
        return False
    remove_target(ctx, name)
    return True


HANDLERS = {steps.RegisterScaling: register_scaling, steps.PutScalingPolicy: put_scaling_policy,
            steps.PutWakePolicy: put_wake_policy, steps.DeregisterScaling: deregister_scaling}
DELETERS = {"scaling-policy": Deleter(20, delete_policy), "scalable-target": Deleter(21, delete_target)}
