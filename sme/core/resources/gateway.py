"""The front door's proxy: its IAM role, its CloudWatch Logs group and the Lambda function.

The role may invoke only this endpoint's ARN and write only its own log group; the function is
``sme/gateway/handler.py`` zipped at deploy. The REST API, key and usage plan in front of it are
``sme.core.resources.apigateway``. Each piece is recorded the moment it exists; every handler also
finishes a piece an interrupted deploy left half made (a role without its policy, a log group without its
retention), so a deploy killed anywhere converges when run again. Teardown deletes them (orders 13-15)
after the API (10-12) and before the endpoint (40).
"""

from __future__ import annotations

import json
from typing import Any

from sme.aws import aws_call, if_found
from sme.core import names, steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import GatewaySpec
from sme.core.resources.iam import delete_role, while_role_propagates

RUNTIME = "python3.12"


def create_gateway_role(ctx: ExecContext, step: steps.CreateGatewayRole) -> None:
    spec = step.gateway
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    iam = ctx.aws.client("iam")
    found = if_found("iam:GetRole", spec.role_name, lambda: iam.get_role(RoleName=spec.role_name))
    if found is None:
        with aws_call("iam:CreateRole", spec.role_name):
            found = iam.create_role(RoleName=spec.role_name, Path="/sme/", AssumeRolePolicyDocument=json.dumps(trust),
                                    Description=f"sme front door proxy for {spec.experiment}", Tags=ctx.tags)
    ctx.record("gateway-role", spec.role_name, found["Role"]["Arn"])
    with aws_call("iam:PutRolePolicy", spec.role_name):
        iam.put_role_policy(RoleName=spec.role_name, PolicyName=names.GATEWAY_ROLE_POLICY, PolicyDocument=spec.role_policy)


def create_gateway_log_group(ctx: ExecContext, step: steps.CreateGatewayLogGroup) -> None:
    spec = step.gateway
    logs = ctx.aws.client("logs")
    with aws_call("logs:DescribeLogGroups", spec.log_group):
        groups = logs.describe_log_groups(logGroupNamePrefix=spec.log_group)["logGroups"]
    if not any(g["logGroupName"] == spec.log_group for g in groups):
        with aws_call("logs:CreateLogGroup", spec.log_group):
            logs.create_log_group(logGroupName=spec.log_group, tags=ctx.tag_map)
    ctx.record("log-group", spec.log_group)
    with aws_call("logs:PutRetentionPolicy", spec.log_group):
        logs.put_retention_policy(logGroupName=spec.log_group, retentionInDays=spec.log_retention_days)


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
}
DELETERS = {
    "lambda": Deleter(13, delete_function),
    "log-group": Deleter(14, delete_log_group),
    "gateway-role": Deleter(15, delete_role),
}
