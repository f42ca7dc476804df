"""What AWS has of the front door (part of the one reader, ``sme.core.observe``): read-only calls.

Each piece is found by its name (``sme.core.names``). For the pieces that exist, it also says what an
interrupted deploy may have left out (``GatewayView.gaps``): the proxy role's inline policy, the log
group's retention, the API's route, integration, stage and permission to call the function, the usage
plan's stage, the key on the plan, and the URL and key sme records. The planner finishes what is missing,
so a deploy killed between any two calls converges when run again.
"""

from __future__ import annotations

import json
from typing import Any

from sme.aws import AwsContext, aws_call, if_found, named_item
from sme.core import names
from sme.core.models import GatewaySpec, GatewayView


def read_gateway(aws: AwsContext, experiment: str, spec: GatewaySpec | None,
                 recorded: frozenset[str] = frozenset()) -> GatewayView:
    """``recorded``: the outputs and secrets the state file holds ("gateway_url", "api_key")."""
    api_name, function = names.gateway_api_name(experiment), names.gateway_function_name(experiment)
    log_group = names.gateway_log_group(experiment)
    parts: list[tuple[str, str]] = []
    gaps: list[tuple[str, str]] = []
    iam, lam, apigw = aws.client("iam"), aws.client("lambda"), aws.client("apigateway")
    if if_found("iam:GetRole", function, lambda: iam.get_role(RoleName=function)):
        parts.append(("gateway-role", function))
        if spec and inline_policy(iam, function, names.GATEWAY_ROLE_POLICY) != spec.role_policy:
            gaps.append(("gateway-role", "its inline policy is missing or differs"))
    group = _log_group(aws, log_group)
    if group is not None:
        parts.append(("log-group", log_group))
        if spec and group.get("retentionInDays") != spec.log_retention_days:
            gaps.append(("log-group", f"retention is not {spec.log_retention_days} days"))
    fn = if_found("lambda:GetFunction", function, lambda: lam.get_function(FunctionName=function))
    if fn:
        parts.append(("lambda", function))
    api = named_item("apigateway:GetRestApis", api_name, lambda: apigw.get_rest_apis(limit=500))
    if api:
        parts.append(("gateway-api", api["id"]))
        if spec:
            gaps += [("gateway-api", g) for g in _api_gaps(aws, api["id"], spec, fn, recorded)]
    plan = named_item("apigateway:GetUsagePlans", api_name, lambda: apigw.get_usage_plans(limit=500))
    limits: tuple = ()
    if plan:
        parts.append(("usage-plan", plan["id"]))
        throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
        limits = (float(throttle.get("rateLimit", 0)), int(throttle.get("burstLimit", 0)),
                  int(quota.get("limit", 0)), str(quota.get("period", "")))
    key = named_item("apigateway:GetApiKeys", api_name, lambda: apigw.get_api_keys(nameQuery=api_name, limit=500))
    if key:
        parts.append(("gateway-key", key["id"]))
    if spec and plan and key:
        gaps += [("usage-plan", g) for g in _key_gaps(apigw, plan, key["id"], api["id"] if api else "", spec,
                                                      recorded)]
    sha = fn["Configuration"].get("CodeSha256", "") if fn else ""
    return GatewayView(tuple(parts), sha, limits, tuple(gaps))


def inline_policy(iam: Any, role: str, policy: str) -> str | None:
    """A role's inline policy as canonical JSON (sorted keys), as sme writes its desired policies."""
    reply = if_found("iam:GetRolePolicy", f"{role}/{policy}",
                     lambda: iam.get_role_policy(RoleName=role, PolicyName=policy))
    if reply is None:
        return None
    doc = reply["PolicyDocument"]
    if isinstance(doc, str):
        from urllib.parse import unquote

        doc = json.loads(unquote(doc))
    return json.dumps(doc, sort_keys=True)


def _log_group(aws: AwsContext, name: str) -> dict[str, Any] | None:
    with aws_call("logs:DescribeLogGroups", name):
        groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def _api_gaps(aws: AwsContext, api_id: str, spec: GatewaySpec, fn: dict[str, Any] | None,
              recorded: frozenset[str]) -> list[str]:
    apigw, lam = aws.client("apigateway"), aws.client("lambda")
    with aws_call("apigateway:GetResources", api_id):
        items = apigw.get_resources(restApiId=api_id, limit=500)["items"]
    resource = next((r["id"] for r in items if r["path"] == f"/{spec.path}"), None)
    gaps = []
    method = None if resource is None else if_found(
        "apigateway:GetMethod", f"POST /{spec.path}",
        lambda: apigw.get_method(restApiId=api_id, resourceId=resource, httpMethod="POST"))
    if method is None or not method.get("apiKeyRequired"):
        gaps.append(f"no POST /{spec.path} that requires an API key")
    uri = names.lambda_integration_uri(aws.region or "", fn["Configuration"]["FunctionArn"]) if fn else None
    if method is None or ((method.get("methodIntegration") or {}).get("uri")) != uri:
        gaps.append("no Lambda proxy integration with the proxy function")
    if if_found("apigateway:GetStage", spec.stage, lambda: apigw.get_stage(restApiId=api_id, stageName=spec.stage)) \
            is None:
        gaps.append(f"stage {spec.stage} is not deployed")
    policy = if_found("lambda:GetPolicy", spec.function_name, lambda: lam.get_policy(FunctionName=spec.function_name))
    if not policy or names.gateway_permission_id(api_id) not in policy.get("Policy", ""):
        gaps.append("the API may not invoke the proxy function")
    if "gateway_url" not in recorded:
        gaps.append("its URL is not recorded")
    return gaps


def _key_gaps(apigw: Any, plan: dict[str, Any], key_id: str, api_id: str, spec: GatewaySpec,
              recorded: frozenset[str]) -> list[str]:
    gaps = []
    if not any(s.get("apiId") == api_id and s.get("stage") == spec.stage for s in plan.get("apiStages") or []):
        gaps.append(f"the usage plan is not on stage {spec.stage}")
    with aws_call("apigateway:GetUsagePlanKeys", plan["id"]):
        linked = {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"], limit=500)["items"]}
    if key_id not in linked:
        gaps.append("the API key is not on the usage plan")
    if "api_key" not in recorded:
        gaps.append("the API key is not recorded")
    return gaps
