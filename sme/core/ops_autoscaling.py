"""Application Auto Scaling: a variant's scalable target and its target-tracking policy.

Targets and policies are recorded as they are made; teardown removes them (orders 20/21) before the
endpoint (40), because a target left on a deleted variant blocks a later endpoint of the same name.
"""

from __future__ import annotations

from typing import Any

from sme.aws import AwsError, aws_call, is_not_found
from sme.core.executor import ExecContext, handles
from sme.core.extras import SCALABLE_DIMENSION, ScalingSpec
from sme.core.models import Step
from sme.core.sweeper import Kind, register
from sme.state import ResourceRecord

NAMESPACE = "sagemaker"


@handles("register_scaling")
def register_scaling(ctx: ExecContext, step: Step) -> None:
    spec: ScalingSpec = step.params
    with aws_call("application-autoscaling:RegisterScalableTarget", spec.resource_id):
        reply = ctx.aws.client("application-autoscaling").register_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=spec.resource_id, ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=spec.min, MaxCapacity=spec.max)
    ctx.record("scalable-target", spec.resource_id, reply.get("ScalableTargetARN", ""), min=spec.min, max=spec.max)


@handles("put_scaling_policy")
def put_scaling_policy(ctx: ExecContext, step: Step) -> None:
    spec: ScalingSpec = step.params
    with aws_call("application-autoscaling:PutScalingPolicy", spec.policy_name):
        reply = ctx.aws.client("application-autoscaling").put_scaling_policy(
            PolicyName=spec.policy_name, ServiceNamespace=NAMESPACE, ResourceId=spec.resource_id,
            ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=spec.policy_config)
    ctx.record("scaling-policy", spec.policy_name, reply.get("PolicyARN", ""), resource_id=spec.resource_id)


@handles("deregister_scaling")
def deregister_scaling(ctx: ExecContext, step: Step) -> None:
    for name in remove_target(ctx.aws, step.params):
        ctx.state.forget("scaling-policy", name)
    ctx.state.forget("scalable-target", step.params)
    ctx.save()


def remove_target(aws: Any, resource_id: str) -> list[str]:
    """Delete the target's policies, then the target; return the policy names deleted."""
    client = aws.client("application-autoscaling")
    with aws_call("application-autoscaling:DescribeScalingPolicies", resource_id):
        policies = client.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=resource_id,
                                                    ScalableDimension=SCALABLE_DIMENSION)["ScalingPolicies"]
    for p in policies:
        _delete_policy(aws, p["PolicyName"], resource_id)
    _gone_ok(lambda: client.deregister_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION),
        "DeregisterScalableTarget", resource_id)
    return [p["PolicyName"] for p in policies]


def _delete_policy(aws: Any, name: str, resource_id: str) -> bool:
    return _gone_ok(lambda: aws.client("application-autoscaling").delete_scaling_policy(
        PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION),
        "DeleteScalingPolicy", name)


def _gone_ok(call: Any, op: str, name: str) -> bool:
    try:
        with aws_call(f"application-autoscaling:{op}", name):
            call()
        return True
    except AwsError as exc:
        if exc.code == "ObjectNotFoundException" or is_not_found(exc.__cause__ or exc):
            return False
        raise


def _delete_target(aws: Any, rec: ResourceRecord) -> bool:
    client = aws.client("application-autoscaling")
    with aws_call("application-autoscaling:DescribeScalableTargets", rec.name):
        found = client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[rec.name],
                                                 ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    if not found:
        return False
    remove_target(aws, rec.name)
    return True


register(Kind("scaling-policy", 20, lambda aws, r: _delete_policy(aws, r.name, r.extra.get("resource_id", ""))))
register(Kind("scalable-target", 21, _delete_target))
