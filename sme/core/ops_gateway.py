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

from sme.aws import AwsError, aws_call, is_not_found
from sme.core import ops_iam
from sme.core.executor import ExecContext, handles
from sme.core.extras import GatewaySpec
from sme.core.models import Step
from sme.core.sweeper import Kind, register
from sme.state import ResourceRecord

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


@handles("create_gateway_role")
def create_gateway_role(ctx: ExecContext, step: Step) -> None:
    spec: GatewaySpec = step.params
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    iam = ctx.aws.client("iam")
    with aws_call("iam:CreateRole", spec.role_name):
        reply = iam.create_role(RoleName=spec.role_name, Path="/sme/", AssumeRolePolicyDocument=json.dumps(trust),
                                Description=f"sme front door proxy for {spec.experiment}", Tags=ctx.tags)
    ctx.record("gateway-role", spec.role_name, reply["Role"]["Arn"])
    with aws_call("iam:PutRolePolicy", spec.role_name):
        iam.put_role_policy(RoleName=spec.role_name, PolicyName="invoke-endpoint", PolicyDocument=proxy_policy(spec))


@handles("create_gateway_log_group")
def create_gateway_log_group(ctx: ExecContext, step: Step) -> None:
    spec: GatewaySpec = step.params
    logs = ctx.aws.client("logs")
    with aws_call("logs:CreateLogGroup", spec.log_group):
        logs.create_log_group(logGroupName=spec.log_group, tags=dict(ctx.desired.tags) if ctx.desired else {})
    ctx.record("log-group", spec.log_group)
    with aws_call("logs:PutRetentionPolicy", spec.log_group):
        logs.put_retention_policy(logGroupName=spec.log_group, retentionInDays=LOG_RETENTION_DAYS)


@handles("create_gateway_function")
def create_gateway_function(ctx: ExecContext, step: Step) -> None:
    from sme.gateway.package import HANDLER, handler_zip

    spec: GatewaySpec = step.params
    role_arn = ctx.aws.client("iam").get_role(RoleName=spec.role_name)["Role"]["Arn"]
    kwargs = dict(FunctionName=spec.function_name, Runtime=RUNTIME, Role=role_arn, Handler=HANDLER,
                  Code={"ZipFile": handler_zip()}, Timeout=spec.timeout, MemorySize=spec.memory,
                  Description=f"sme front door for endpoint {ctx.desired.endpoint_name if ctx.desired else ''}",
                  Environment={"Variables": _function_env(ctx, spec)}, Tags=dict(ctx.desired.tags) if ctx.desired else {})
    client = ctx.aws.client("lambda")
    reply = ops_iam.while_role_propagates(ctx, "lambda:CreateFunction", spec.function_name, "Lambda",
                                  lambda: client.create_function(**kwargs))
    ctx.record("lambda", spec.function_name, reply["FunctionArn"])


@handles("update_gateway_function")
def update_gateway_function(ctx: ExecContext, step: Step) -> None:
    from sme.gateway.package import handler_zip

    spec: GatewaySpec = step.params
    with aws_call("lambda:UpdateFunctionCode", spec.function_name):
        ctx.aws.client("lambda").update_function_code(FunctionName=spec.function_name, ZipFile=handler_zip())


def _function_env(ctx: ExecContext, spec: GatewaySpec) -> dict[str, str]:
    return {"SME_ENDPOINT_NAME": ctx.desired.endpoint_name if ctx.desired else spec.experiment,
            "SME_CONTENT_TYPE": spec.content_type}


@handles("create_gateway_api")
def create_gateway_api(ctx: ExecContext, step: Step) -> None:
    spec: GatewaySpec = step.params
    apigw, region = ctx.aws.client("apigateway"), ctx.aws.region
    with aws_call("apigateway:CreateRestApi", spec.api_name):
        # binary media types */*: every body reaches the proxy base64-encoded, byte for byte (images, protobuf,
        # npy as well as CSV), and a base64 reply of the proxy goes back to the client as bytes
        api = apigw.create_rest_api(name=spec.api_name, description=f"sme front door for {spec.experiment}",
                                    endpointConfiguration={"types": ["REGIONAL"]}, binaryMediaTypes=["*/*"],
                                    tags=dict(ctx.desired.tags) if ctx.desired else {})
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


@handles("update_usage_plan")
def update_usage_plan(ctx: ExecContext, step: Step) -> None:
    spec: GatewaySpec = step.params
    changes = {"/throttle/rateLimit": f"{spec.rate:g}", "/throttle/burstLimit": str(spec.burst),
               "/quota/limit": str(spec.quota_limit), "/quota/period": spec.quota_period}
    with aws_call("apigateway:UpdateUsagePlan", step.name):
        ctx.aws.client("apigateway").update_usage_plan(
            usagePlanId=step.name, patchOperations=[{"op": "replace", "path": p, "value": v} for p, v in changes.items()])


@handles("create_gateway_key")
def create_gateway_key(ctx: ExecContext, step: Step) -> None:
    spec: GatewaySpec = step.params
    apigw = ctx.aws.client("apigateway")
    api_id = _find(apigw.get_rest_apis, spec.api_name)
    key_id = _find(lambda limit: apigw.get_api_keys(nameQuery=spec.api_name, limit=limit), spec.api_name)
    if key_id is None:
        with aws_call("apigateway:CreateApiKey", spec.api_name):
            key = apigw.create_api_key(name=spec.api_name, enabled=True, tags=dict(ctx.desired.tags)
                                       if ctx.desired else {}, description=f"sme front door key for {spec.experiment}")
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
                tags=dict(ctx.desired.tags) if ctx.desired else {})["id"]
        ctx.record("usage-plan", plan_id, plan_name=spec.api_name)
    with aws_call("apigateway:CreateUsagePlanKey", plan_id):
        try:
            apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
        except apigw.exceptions.ConflictException:
            pass  # the key is already on the plan


def _find(list_call: Any, name: str) -> str | None:
    items = list_call(limit=500)["items"]
    return next((i["id"] for i in items if i.get("name") == name), None)


@handles("remove_gateway_part")
def remove_gateway_part(ctx: ExecContext, step: Step) -> None:
    kind = KINDS_BY_PART[step.params]
    kind(ctx.aws, ResourceRecord(step.params, step.name))
    ctx.state.forget(step.params, step.name)
    if step.params == "gateway-api":
        ctx.state.outputs.pop("gateway_url", None)
    if step.params == "gateway-key":
        ctx.state.secrets.pop("api_key", None)
    ctx.save()


def _gone_ok(service: str, op: str, name: str, call: Any) -> bool:
    try:
        with aws_call(f"{service}:{op}", name):
            call()
        return True
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return False
        raise


def delete_usage_plan(aws: Any, rec: ResourceRecord) -> bool:
    apigw = aws.client("apigateway")
    try:
        with aws_call("apigateway:GetUsagePlan", rec.name):
            stages = apigw.get_usage_plan(usagePlanId=rec.name).get("apiStages", [])
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return False
        raise
    if stages:
        # a usage plan must let go of its stages before it (or the API) can be deleted
        ops = [{"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in stages]
        _gone_ok("apigateway", "UpdateUsagePlan", rec.name,
                 lambda: apigw.update_usage_plan(usagePlanId=rec.name, patchOperations=ops))
    return _gone_ok("apigateway", "DeleteUsagePlan", rec.name, lambda: apigw.delete_usage_plan(usagePlanId=rec.name))


def _delete_key(aws: Any, rec: ResourceRecord) -> bool:
    return _gone_ok("apigateway", "DeleteApiKey", rec.name, lambda: aws.client("apigateway").delete_api_key(apiKey=rec.name))


def _delete_api(aws: Any, rec: ResourceRecord) -> bool:
    return _gone_ok("apigateway", "DeleteRestApi", rec.name,
                    lambda: aws.client("apigateway").delete_rest_api(restApiId=rec.name))


def _delete_function(aws: Any, rec: ResourceRecord) -> bool:
    return _gone_ok("lambda", "DeleteFunction", rec.name, lambda: aws.client("lambda").delete_function(FunctionName=rec.name))


def _delete_log_group(aws: Any, rec: ResourceRecord) -> bool:
    return _gone_ok("logs", "DeleteLogGroup", rec.name, lambda: aws.client("logs").delete_log_group(logGroupName=rec.name))


KINDS_BY_PART = {"usage-plan": delete_usage_plan, "gateway-key": _delete_key, "gateway-api": _delete_api,
                 "lambda": _delete_function, "log-group": _delete_log_group,
                 "gateway-role": lambda aws, r: ops_iam.delete_role(aws, r.name)}
for _order, _part in enumerate(("usage-plan", "gateway-key", "gateway-api", "lambda", "log-group", "gateway-role")):
    register(Kind(_part, 10 + _order, KINDS_BY_PART[_part]))
