"""What AWS has of the production extras: scalable targets, alarms, the front door. Read-only calls only.

The front door's pieces are found by their names (``sme-<experiment>...``), so a lost state file does not
make the planner create a second API.
"""

from __future__ import annotations

import json
from typing import Any

from sme.aws import aws_call, is_not_found
from sme.core.extras import SCALABLE_DIMENSION, gateway_spec, resource_id, update_spec
from sme.core.models import Desired, Observed
from sme.core.plan_extras import ObservedExtras, ScalingView

POLICY_KEYS = ("TargetValue", "ScaleInCooldown", "ScaleOutCooldown", "DisableScaleIn",
               "PredefinedMetricSpecification", "CustomizedMetricSpecification")


def observe_extras(aws: Any, desired: Desired, observed: Observed) -> ObservedExtras:
    variants = {v.name for v in desired.config.variants}
    if observed.endpoint:
        variants |= {v.name for v in observed.endpoint.variants}
    scaling = scaling_views(aws, [resource_id(desired.endpoint_name, v) for v in sorted(variants)]) \
        if observed.endpoint else ()
    update = update_spec(desired)
    alarms = existing_alarms(aws, [a.name for a in update.alarms]) if update and update.alarms else frozenset()
    gateway, sha, limits = gateway_parts(aws, desired) if _gateway_involved(desired) else ({}, "", ())
    return ObservedExtras(scaling=scaling, alarms=alarms, gateway=gateway, function_sha=sha, usage_limits=limits)


def _gateway_involved(desired: Desired) -> bool:
    """Asked for, or recorded as made earlier (then removing the section removes it): else skip the reads."""
    from sme.state import load_state

    if desired.extra.get("gateway") is not None:
        return True
    state = load_state(desired.experiment)
    return any(r.kind in ("gateway-api", "lambda", "usage-plan", "gateway-key", "gateway-role") for r in state.resources)


def scaling_views(aws: Any, resource_ids: list[str]) -> tuple[ScalingView, ...]:
    client = aws.client("application-autoscaling")
    with aws_call("application-autoscaling:DescribeScalableTargets", ", ".join(resource_ids)):
        targets = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=resource_ids,
                                                   ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    views = []
    for t in targets:
        with aws_call("application-autoscaling:DescribeScalingPolicies", t["ResourceId"]):
            policies = client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=t["ResourceId"],
                                                        ScalableDimension=SCALABLE_DIMENSION)["ScalingPolicies"]
        views.append(ScalingView(t["ResourceId"], int(t["MinCapacity"]), int(t["MaxCapacity"]), tuple(
            (p["PolicyName"], canonical_policy(p.get("TargetTrackingScalingPolicyConfiguration", {})))
            for p in policies)))
    return tuple(views)


def canonical_policy(config: dict[str, Any]) -> str:
    out = {k: config[k] for k in POLICY_KEYS if k in config}
    out["TargetValue"] = float(out.get("TargetValue", 0))
    out["DisableScaleIn"] = bool(out.get("DisableScaleIn", False))
    return json.dumps(out, sort_keys=True)


def existing_alarms(aws: Any, names: list[str]) -> frozenset[str]:
    with aws_call("cloudwatch:DescribeAlarms", ", ".join(names)):
        found = aws.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    return frozenset(a["AlarmName"] for a in found)


def gateway_parts(aws: Any, desired: Desired) -> tuple[dict[str, str], str, tuple]:
    """part -> id of each front-door piece that exists (by name), the live function's CodeSha256, and the
    usage plan's limits (rate, burst, quota limit, quota period)."""
    names = gateway_spec(desired, "0" * 12) or _names_only(desired)
    parts: dict[str, str] = {}
    if _found(lambda: aws.client("iam").get_role(RoleName=names.role_name), "iam:GetRole", names.role_name):
        parts["gateway-role"] = names.role_name
    with aws_call("logs:DescribeLogGroups", names.log_group):
        groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=names.log_group)["logGroups"]
    if any(g["logGroupName"] == names.log_group for g in groups):
        parts["log-group"] = names.log_group
    sha = ""
    fn = _found(lambda: aws.client("lambda").get_function(FunctionName=names.function_name), "lambda:GetFunction",
                names.function_name)
    if fn:
        parts["lambda"] = names.function_name
        sha = fn["Configuration"].get("CodeSha256", "")
    apigw = aws.client("apigateway")
    with aws_call("apigateway:GetRestApis", names.api_name):
        apis = [a for a in apigw.get_rest_apis(limit=500)["items"] if a["name"] == names.api_name]
    if apis:
        parts["gateway-api"] = apis[0]["id"]
    with aws_call("apigateway:GetUsagePlans", names.api_name):
        plans = [p for p in apigw.get_usage_plans(limit=500)["items"] if p["name"] == names.api_name]
    limits: tuple = ()
    if plans:
        parts["usage-plan"] = plans[0]["id"]
        throttle, quota = plans[0].get("throttle") or {}, plans[0].get("quota") or {}
        limits = (float(throttle.get("rateLimit", 0)), int(throttle.get("burstLimit", 0)), int(quota.get("limit", 0)),
                  str(quota.get("period", "")))
    with aws_call("apigateway:GetApiKeys", names.api_name):
        keys = [k for k in apigw.get_api_keys(nameQuery=names.api_name, limit=500)["items"]
                if k["name"] == names.api_name]
    if keys:
        parts["gateway-key"] = keys[0]["id"]
    return parts, sha, limits


def _names_only(desired: Desired) -> Any:
    from sme.core.extras import GatewaySpec

    return GatewaySpec(desired.experiment, "", "", "", "", 0, 0, 0, "", 0, 0)


def _found(call: Any, op: str, name: str) -> Any:
    try:
        with aws_call(op, name):
            return call()
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc.__cause__ or exc):
            return None
        raise

