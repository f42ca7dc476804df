"""API Gateway: the front door's REST API (regional, ``POST /<path>``, API key required, Lambda proxy
integration, one stage), its API key and the usage plan that carries the throttle and quota.

The pieces are found by name (``sme-<experiment>``) and every handler makes only what is missing, so a deploy
killed between any two calls (an API with only ``/``, a plan without its stage, a key not on its plan)
finishes the job when run again; ``sme.core.observe`` tells the planner what is missing. The invoke URL goes
to ``state.outputs["gateway_url"]``, the key's value to ``state.secrets["api_key"]`` (the state file is 0600;
nothing prints the key). Teardown deletes them (orders 10-12) before the proxy and the endpoint.
"""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found, named_item
from sme.core import names, steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import GatewaySpec


def create_gateway_api(ctx: ExecContext, step: steps.CreateGatewayApi) -> None:
    spec = step.gateway
    apigw = ctx.aws.client("apigateway")
    api_id = find_id("apigateway:GetRestApis", spec.api_name, lambda: apigw.get_rest_apis(limit=500))
    if api_id is None:
        with aws_call("apigateway:CreateRestApi", spec.api_name):
            # binary media types */*: every body reaches the proxy base64-encoded, byte for byte (images,
            # protobuf, npy as well as CSV), and a base64 reply of the proxy goes back to the client as bytes
            api_id = apigw.create_rest_api(name=spec.api_name, description=f"sme front door for {spec.experiment}",
                                           endpointConfiguration={"types": ["REGIONAL"]}, binaryMediaTypes=["*/*"],
                                           tags=ctx.tag_map)["id"]
    ctx.record("gateway-api", api_id, api_name=spec.api_name)
    _route(ctx, apigw, api_id, spec)
    _permission(ctx, api_id, spec)
    if if_found("apigateway:GetStage", spec.stage, lambda: apigw.get_stage(restApiId=api_id, stageName=spec.stage)) \
            is None:
        with aws_call("apigateway:CreateDeployment", f"{api_id}/{spec.stage}"):
            apigw.create_deployment(restApiId=api_id, stageName=spec.stage, description="sme deploy")
    ctx.state.outputs["gateway_url"] = invoke_url(apigw.meta.endpoint_url, api_id, ctx.aws.region or "", spec.stage,
                                                  spec.path)
    ctx.save()


def _route(ctx: ExecContext, apigw: Any, api_id: str, spec: GatewaySpec) -> str:
    """``POST /<path>`` with an API key and the Lambda proxy integration; its resource id."""
    with aws_call("apigateway:GetResources", api_id):
        items = apigw.get_resources(restApiId=api_id, limit=500)["items"]
    root = next(r["id"] for r in items if r["path"] == "/")
    resource = next((r["id"] for r in items if r["path"] == f"/{spec.path}"), None)
    if resource is None:
        with aws_call("apigateway:CreateResource", f"{api_id}/{spec.path}"):
            resource = apigw.create_resource(restApiId=api_id, parentId=root, pathPart=spec.path)["id"]
    method = if_found("apigateway:GetMethod", f"POST /{spec.path}",
                      lambda: apigw.get_method(restApiId=api_id, resourceId=resource, httpMethod="POST"))
    if method is None:
        with aws_call("apigateway:PutMethod", f"POST /{spec.path}"):
            apigw.put_method(restApiId=api_id, resourceId=resource, httpMethod="POST", authorizationType="NONE",
                             apiKeyRequired=True)
    elif not method.get("apiKeyRequired"):
        with aws_call("apigateway:UpdateMethod", f"POST /{spec.path}"):
            apigw.update_method(restApiId=api_id, resourceId=resource, httpMethod="POST",
                                patchOperations=[{"op": "replace", "path": "/apiKeyRequired", "value": "true"}])
    uri = integration_uri(ctx, spec)
    if ((method or {}).get("methodIntegration") or {}).get("uri") != uri:
        with aws_call("apigateway:PutIntegration", f"POST /{spec.path}"):
            apigw.put_integration(restApiId=api_id, resourceId=resource, httpMethod="POST", type="AWS_PROXY",
                                  integrationHttpMethod="POST", uri=uri)
    return resource


def integration_uri(ctx: ExecContext, spec: GatewaySpec) -> str:
    with aws_call("lambda:GetFunction", spec.function_name):
        fn_arn = ctx.aws.client("lambda").get_function(FunctionName=spec.function_name)["Configuration"]["FunctionArn"]
    return names.lambda_integration_uri(ctx.aws.region or "", fn_arn)


def _permission(ctx: ExecContext, api_id: str, spec: GatewaySpec) -> None:
    """The API may invoke the function (Lambda's resource policy), for POST /<path> only."""
    lam = ctx.aws.client("lambda")
    policy = if_found("lambda:GetPolicy", spec.function_name, lambda: lam.get_policy(FunctionName=spec.function_name))
    if policy and names.gateway_permission_id(api_id) in policy.get("Policy", ""):
        return
    partition, _, region, account = spec.endpoint_arn.split(":")[1:5]
    with aws_call("lambda:AddPermission", spec.function_name):
        lam.add_permission(FunctionName=spec.function_name, StatementId=names.gateway_permission_id(api_id),
                           Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                           SourceArn=f"arn:{partition}:execute-api:{region}:{account}:{api_id}/*/POST/{spec.path}")


def invoke_url(control_plane_url: str, api_id: str, region: str, stage: str, path: str) -> str:
    """The URL clients call. API Gateway's own host in AWS; against a local AWS (an endpoint URL that is not
    amazonaws.com: ``sme local``, tests), that server's execute-api route, which runs the proxy for real."""
    from urllib.parse import urlsplit

    host = urlsplit(control_plane_url).hostname or ""
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        suffix = ".com.cn" if host.endswith(".cn") else ".com"
        return f"https://{api_id}.execute-api.{region}.amazonaws{suffix}/{stage}/{path}"
    return f"{control_plane_url.rstrip('/')}/restapis/{api_id}/{stage}/_user_request_/{path}"


def create_gateway_key(ctx: ExecContext, step: steps.CreateGatewayKey) -> None:
    """The API key, the usage plan on the API's stage, and the key on the plan: whichever are missing."""
    spec = step.gateway
    apigw = ctx.aws.client("apigateway")
    api_id = find_id("apigateway:GetRestApis", spec.api_name, lambda: apigw.get_rest_apis(limit=500))
    key_id = find_id("apigateway:GetApiKeys", spec.api_name,
                     lambda: apigw.get_api_keys(nameQuery=spec.api_name, limit=500))
    if key_id is None:
        with aws_call("apigateway:CreateApiKey", spec.api_name):
            key_id = apigw.create_api_key(name=spec.api_name, enabled=True, tags=ctx.tag_map,
                                          description=f"sme front door key for {spec.experiment}")["id"]
    ctx.record("gateway-key", key_id, key_name=spec.api_name)
    with aws_call("apigateway:GetApiKey", key_id):
        ctx.state.secrets["api_key"] = apigw.get_api_key(apiKey=key_id, includeValue=True)["value"]
    ctx.save()
    plan_id = _usage_plan(ctx, apigw, api_id, spec)
    with aws_call("apigateway:GetUsagePlanKeys", plan_id):
        linked = {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan_id, limit=500)["items"]}
    if key_id not in linked:
        with aws_call("apigateway:CreateUsagePlanKey", plan_id):
            apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")


def _usage_plan(ctx: ExecContext, apigw: Any, api_id: str | None, spec: GatewaySpec) -> str:
    stage = {"apiId": api_id, "stage": spec.stage}
    plan = named_item("apigateway:GetUsagePlans", spec.api_name, lambda: apigw.get_usage_plans(limit=500))
    if plan is None:
        with aws_call("apigateway:CreateUsagePlan", spec.api_name):
            plan = apigw.create_usage_plan(
                name=spec.api_name, description=f"sme front door limits for {spec.experiment}", apiStages=[stage],
                throttle={"rateLimit": spec.rate, "burstLimit": spec.burst},
                quota={"limit": spec.quota_limit, "period": spec.quota_period}, tags=ctx.tag_map)
    ctx.record("usage-plan", plan["id"], plan_name=spec.api_name)
    if not any(s.get("apiId") == api_id and s.get("stage") == spec.stage for s in plan.get("apiStages") or []):
        with aws_call("apigateway:UpdateUsagePlan", plan["id"]):
            apigw.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
                {"op": "add", "path": "/apiStages", "value": f"{api_id}:{spec.stage}"}])
    return plan["id"]


def update_usage_plan(ctx: ExecContext, step: steps.UpdateUsagePlan) -> None:
    spec = step.gateway
    changes = {"/throttle/rateLimit": f"{spec.rate:g}", "/throttle/burstLimit": str(spec.burst),
               "/quota/limit": str(spec.quota_limit), "/quota/period": spec.quota_period}
    with aws_call("apigateway:UpdateUsagePlan", step.name):
        ctx.aws.client("apigateway").update_usage_plan(
            usagePlanId=step.name, patchOperations=[{"op": "replace", "path": p, "value": v} for p, v in changes.items()])


def find_id(operation: str, name: str, list_call: Any) -> str | None:
    item = named_item(operation, name, list_call)
    return item["id"] if item else None


def delete_usage_plan(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    apigw = ctx.aws.client("apigateway")
    plan = if_found("apigateway:GetUsagePlan", name, lambda: apigw.get_usage_plan(usagePlanId=name))
    if plan is None:
        return False
    stages = plan.get("apiStages", [])
    if stages:
        # a usage plan must let go of its stages before it (or the API) can be deleted
        ops = [{"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in stages]
        if_found("apigateway:UpdateUsagePlan", name, lambda: apigw.update_usage_plan(usagePlanId=name, patchOperations=ops))
    return if_found("apigateway:DeleteUsagePlan", name, lambda: apigw.delete_usage_plan(usagePlanId=name)) is not None


def delete_key(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    ctx.state.drop_secret("api_key")
    apigw = ctx.aws.client("apigateway")
    return if_found("apigateway:DeleteApiKey", name, lambda: apigw.delete_api_key(apiKey=name)) is not None


def delete_api(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    ctx.state.drop_output("gateway_url")
    apigw = ctx.aws.client("apigateway")
    return if_found("apigateway:DeleteRestApi", name, lambda: apigw.delete_rest_api(restApiId=name)) is not None


HANDLERS = {
    steps.CreateGatewayApi: create_gateway_api,
    steps.CreateGatewayKey: create_gateway_key,
    steps.UpdateUsagePlan: update_usage_plan,
}
# the usage plan and key before the API: a plan must let go of its stages first
DELETERS = {
    "usage-plan": Deleter(10, delete_usage_plan),
    "gateway-key": Deleter(11, delete_key),
    "gateway-api": Deleter(12, delete_api),
}
