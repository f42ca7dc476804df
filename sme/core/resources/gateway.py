"""The front door: a Lambda proxy behind an API Gateway REST API with an API key and a usage plan.

Pieces, in creation order: the proxy's role (it may invoke only this endpoint's ARN), its log group, the
function (``sme/gateway/handler.py`` zipped at deploy), the REST API (regional, ``POST /<path>``, API key
required, Lambda proxy integration, one stage), then the API key and the usage plan (throttle, quota).
Each is recorded the moment it exists. The invoke URL goes to ``state.outputs["gateway_url"]`` and the
key's value to ``state.secrets["api_key"]`` (the state file is 0600; nothing prints the key).
Teardown deletes them (orders 10-15) before the endpoint (40).
"""

from __future__ import annotations

import json
from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import GatewaySpec
from sme.core.resources.iam import delete_role, while_role_propagates

RUNTIME = "python3.12"
LOG_RETENTION_DAYS = 30


def proxy_policy(spec: GatewaySpec) -> str:
    region, account = spec.endpoint_arn.split(":")[3:5]
    partition = spec.endpoint_arn.split(":")[1]
    logs = f"arn:{partition}:logs:{region}:{account}:log-group:{spec.log_group}"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "InvokeThisEndpointOnly", "Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"],
         "Resource": [spec.endpoint_arn]},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{logs}:*"]}]}, sort_keys=True)


def create_gateway_role(ctx: ExecContext, step: steps.CreateGatewayRole) -> None:
    spec = step.gateway
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    iam = ctx.aws.client("iam")
    with aws_call("iam:CreateRole", spec.role_name):
        reply = iam.create_role(RoleName=spec.role_name, Path="/sme/", AssumeRolePolicyDocument=json.dumps(trust),
                                Description=f"sme front door proxy for {spec.experiment}", Tags=ctx.tags)
    ctx.record("gateway-role", spec.role_name, reply["Role"]["Arn"])
    with aws_call("iam:PutRolePolicy", spec.role_name):
        iam.put_role_policy(RoleName=spec.role_name, PolicyName="invoke-endpoint", PolicyDocument=proxy_policy(spec))


def create_gateway_log_group(ctx: ExecContext, step: steps.CreateGatewayLogGroup) -> None:
    spec = step.gateway
    logs = ctx.aws.client("logs")
    with aws_call("logs:CreateLogGroup", spec.log_group):
        logs.create_log_group(logGroupName=spec.log_group, tags=ctx.tag_map)
    ctx.record("log-group", spec.log_group)
    with aws_call("logs:PutRetentionPolicy", spec.log_group):
        logs.put_retention_policy(logGroupName=spec.log_group, retentionInDays=LOG_RETENTION_DAYS)


def create_gateway_function(ctx: ExecContext, step: steps.CreateGatewayFunction) -> None:
    from sme.gateway.package import HANDLER, handler_zip

    spec = step.gateway
    role_arn = ctx.aws.client("iam").get_role(RoleName=spec.role_name)["Role"]["Arn"]
    kwargs = dict(FunctionName=spec.function_name, Runtime=RUNTIME, Role=role_arn, Handler=HANDLER,
                  Code={"ZipFile": handler_zip()}, Timeout=spec.timeout, MemorySize=spec.memory,
                  Description=f"sme front door for endpoint {ctx.desired.endpoint_name if ctx.desired else ''}",
                  Environment={"Variables": _function_env(ctx, spec)}, Tags=ctx.tag_map)
    client = ctx.aws.client("lambda")
    reply = while_role_propagates(ctx, "lambda:CreateFunction", spec.function_name, "Lambda",
                                  lambda: client.create_function(**kwargs))
    ctx.record("lambda", spec.function_name, reply["FunctionArn"])


def update_gateway_function(ctx: ExecContext, step: steps.UpdateGatewayFunction) -> None:
    from sme.gateway.package import handler_zip

    spec = step.gateway
    with aws_call("lambda:UpdateFunctionCode", spec.function_name):
        ctx.aws.client("lambda").update_function_code(FunctionName=spec.function_name, ZipFile=handler_zip())


def _function_env(ctx: ExecContext, spec: GatewaySpec) -> dict[str, str]:
    return {"SME_ENDPOINT_NAME": ctx.desired.endpoint_name if ctx.desired else spec.experiment,
            "SME_CONTENT_TYPE": spec.content_type}


def create_gateway_api(ctx: ExecContext, step: steps.CreateGatewayApi) -> None:
    spec = step.gateway
    apigw, region = ctx.aws.client("apigateway"), ctx.aws.region
    with aws_call("apigateway:CreateRestApi", spec.api_name):
        # binary media types */*: every body reaches the proxy base64-encoded, byte for byte (images, protobuf,
        # npy as well as CSV), and a base64 reply of the proxy goes back to the client as bytes
        api = apigw.create_rest_api(name=spec.api_name, description=f"sme front door for {spec.experiment}",
                                    endpointConfiguration={"types": ["REGIONAL"]}, binaryMediaTypes=["*/*"],
                                    tags=ctx.tag_map)
    api_id = api["id"]
    ctx.record("gateway-api", api_id, api_name=spec.api_name)
    with aws_call("apigateway:GetResources", api_id):
        root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    with aws_call("apigateway:CreateResource", f"{api_id}/{spec.path}"):
        resource = apigw.create_resource(restApiId=api_id, parentId=root, pathPart=spec.path)["id"]
    with aws_call("apigateway:PutMethod", f"POST /{spec.path}"):
        apigw.put_method(restApiId=api_id, resourceId=resource, httpMethod="POST", authorizationType="NONE",
                         apiKeyRequired=True)
    fn_arn = ctx.aws.client("lambda").get_function(FunctionName=spec.function_name)["Configuration"]["FunctionArn"]
    uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    with aws_call("apigateway:PutIntegration", f"POST /{spec.path}"):
        apigw.put_integration(restApiId=api_id, resourceId=resource, httpMethod="POST", type="AWS_PROXY",
                              integrationHttpMethod="POST", uri=uri)
    account, partition = spec.endpoint_arn.split(":")[4], spec.endpoint_arn.split(":")[1]
    with aws_call("lambda:AddPermission", spec.function_name):
        ctx.aws.client("lambda").add_permission(
            FunctionName=spec.function_name, StatementId=f"sme-apigateway-{api_id}", Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=f"arn:{partition}:execute-api:{region}:{account}:{api_id}/*/POST/{spec.path}")
    with aws_call("apigateway:CreateDeployment", f"{api_id}/{spec.stage}"):
        apigw.create_deployment(restApiId=api_id, stageName=spec.stage, description="sme deploy")
    ctx.state.outputs["gateway_url"] = invoke_url(apigw.meta.endpoint_url, api_id, region, spec.stage, spec.path)
    ctx.save()


def invoke_url(control_plane_url: str, api_id: str, region: str, stage: str, path: str) -> str:
    """The URL clients call. API Gateway's own host in AWS; against a local AWS (an endpoint URL that is not
    amazonaws.com: ``sme local``, tests), that server's execute-api route, which runs the proxy for real."""
    from urllib.parse import urlsplit

    host = urlsplit(control_plane_url).hostname or ""
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        suffix = ".com.cn" if host.endswith(".cn") else ".com"
        return f"https://{api_id}.execute-api.{region}.amazonaws{suffix}/{stage}/{path}"
    return f"{control_plane_url.rstrip('/')}/restapis/{api_id}/{stage}/_user_request_/{path}"


def update_usage_plan(ctx: ExecContext, step: steps.UpdateUsagePlan) -> None:
    spec = step.gateway
    changes = {"/throttle/rateLimit": f"{spec.rate:g}", "/throttle/burstLimit": str(spec.burst),
               "/quota/limit": str(spec.quota_limit), "/quota/period": spec.quota_period}
    with aws_call("apigateway:UpdateUsagePlan", step.name):
        ctx.aws.client("apigateway").update_usage_plan(
            usagePlanId=step.name, patchOperations=[{"op": "replace", "path": p, "value": v} for p, v in changes.items()])


def create_gateway_key(ctx: ExecContext, step: steps.CreateGatewayKey) -> None:
    spec = step.gateway
    apigw = ctx.aws.client("apigateway")
    api_id = _find(apigw.get_rest_apis, spec.api_name)
    key_id = _find(lambda limit: apigw.get_api_keys(nameQuery=spec.api_name, limit=limit), spec.api_name)
    if key_id is None:
        with aws_call("apigateway:CreateApiKey", spec.api_name):
            key = apigw.create_api_key(name=spec.api_name, enabled=True, tags=ctx.tag_map, description=f"sme front door key for {spec.experiment}")
        key_id = key["id"]
        ctx.record("gateway-key", key_id, key_name=spec.api_name)
    with aws_call("apigateway:GetApiKey", key_id):
        ctx.state.secrets["api_key"] = apigw.get_api_key(apiKey=key_id, includeValue=True)["value"]
    ctx.save()
    plan_id = _find(apigw.get_usage_plans, spec.api_name)
    if plan_id is None:
        with aws_call("apigateway:CreateUsagePlan", spec.api_name):
            plan_id = apigw.create_usage_plan(
                name=spec.api_name, description=f"sme front door limits for {spec.experiment}",
                apiStages=[{"apiId": api_id, "stage": spec.stage}],
                throttle={"rateLimit": spec.rate, "burstLimit": spec.burst},
                quota={"limit": spec.quota_limit, "period": spec.quota_period},
                tags=ctx.tag_map)["id"]
        ctx.record("usage-plan", plan_id, plan_name=spec.api_name)
    with aws_call("apigateway:CreateUsagePlanKey", plan_id):
        try:
            apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
        except apigw.exceptions.ConflictException:
            pass  # the key is already on the plan


def _find(list_call: Any, name: str) -> str | None:
    items = list_call(limit=500)["items"]
    return next((i["id"] for i in items if i.get("name") == name), None)


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
    ctx.state.secrets.pop("api_key", None)
    apigw = ctx.aws.client("apigateway")
    return if_found("apigateway:DeleteApiKey", name, lambda: apigw.delete_api_key(apiKey=name)) is not None


def delete_api(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    ctx.state.outputs.pop("gateway_url", None)
    apigw = ctx.aws.client("apigateway")
    return if_found("apigateway:DeleteRestApi", name, lambda: apigw.delete_rest_api(restApiId=name)) is not None


def delete_function(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    lam = ctx.aws.client("lambda")
    return if_found("lambda:DeleteFunction", name, lambda: lam.delete_function(FunctionName=name)) is not None


def delete_log_group(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    logs = ctx.aws.client("logs")
    return if_found("logs:DeleteLogGroup", name, lambda: logs.delete_log_group(logGroupName=name)) is not None


HANDLERS = {
    steps.CreateGatewayRole: create_gateway_role,
    steps.CreateGatewayLogGroup: create_gateway_log_group,
    steps.CreateGatewayFunction: create_gateway_function,
    steps.UpdateGatewayFunction: update_gateway_function,
    steps.CreateGatewayApi: create_gateway_api,
    steps.CreateGatewayKey: create_gateway_key,
    steps.UpdateUsagePlan: update_usage_plan,
}
# torn down before the endpoint (40): the usage plan and key before the API, the function before its role
DELETERS = {
    "usage-plan": Deleter(10, delete_usage_plan),
    "gateway-key": Deleter(11, delete_key),
    "gateway-api": Deleter(12, delete_api),
    "lambda": Deleter(13, delete_function),
    "log-group": Deleter(14, delete_log_group),
    "gateway-role": Deleter(15, delete_role),
}
