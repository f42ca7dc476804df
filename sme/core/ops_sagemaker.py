"""SageMaker: model, endpoint config, endpoint (create, update, delete, wait)."""

from __future__ import annotations

from typing import Any

from sme.aws import AwsError, aws_call, is_not_found
from sme.core.executor import ExecContext, handles
from sme.core.ops_iam import while_role_propagates
from sme.core.models import DesiredConfig, DesiredModel, Step
from sme.core.waiter import wait_for_endpoint, wait_for_endpoint_gone

@handles("create_model")
def create_model(ctx: ExecContext, step: Step) -> None:
    model: DesiredModel = step.params
    kwargs: dict[str, Any] = {
        "ModelName": model.name,
        "ExecutionRoleArn": model.role_arn,
        "PrimaryContainer": {"Image": model.image, "ModelDataUrl": model.model_data_url,
                             "Environment": dict(model.environment)},
        "EnableNetworkIsolation": model.network_isolation,
        "Tags": ctx.tags,
    }
    if model.subnets:
        kwargs["VpcConfig"] = {"Subnets": list(model.subnets), "SecurityGroupIds": list(model.security_groups)}
    client = ctx.aws.client("sagemaker")
    reply = while_role_propagates(ctx, "sagemaker:CreateModel", model.name, "SageMaker",
                                  lambda: client.create_model(**kwargs))
    ctx.record("model", model.name, reply["ModelArn"])


@handles("create_endpoint_config")
def create_endpoint_config(ctx: ExecContext, step: Step) -> None:
    config: DesiredConfig = step.params
    variants = [{"VariantName": v.name, "ModelName": config.model_name, "InstanceType": v.instance_type,
                 "InitialInstanceCount": v.count, "InitialVariantWeight": v.weight} for v in config.variants]
    with aws_call("sagemaker:CreateEndpointConfig", config.name):
        reply = ctx.aws.client("sagemaker").create_endpoint_config(
            EndpointConfigName=config.name, ProductionVariants=variants, Tags=ctx.tags)
    ctx.record("endpoint-config", config.name, reply["EndpointConfigArn"], model=config.model_name)


@handles("create_endpoint")
def create_endpoint(ctx: ExecContext, step: Step) -> None:
    with aws_call("sagemaker:CreateEndpoint", step.name):
        reply = ctx.aws.client("sagemaker").create_endpoint(
            EndpointName=step.name, EndpointConfigName=step.params, Tags=ctx.tags)
    ctx.record("endpoint", step.name, reply["EndpointArn"])
    ctx.state.push_endpoint_config(step.params)
    ctx.save()


@handles("update_endpoint")
def update_endpoint(ctx: ExecContext, step: Step) -> None:
    kwargs: dict[str, Any] = {"EndpointName": step.name, "EndpointConfigName": step.params}
    kwargs.update(ctx.options.get("update_endpoint_kwargs", {}))
    with aws_call("sagemaker:UpdateEndpoint", step.name):
        ctx.aws.client("sagemaker").update_endpoint(**kwargs)
    if not ctx.state.find("endpoint", step.name):
        ctx.record("endpoint", step.name)
    ctx.state.push_endpoint_config(step.params)
    ctx.save()


@handles("delete_endpoint")
def delete_endpoint_step(ctx: ExecContext, step: Step) -> None:
    delete_endpoint(ctx.aws, step.name)


@handles("wait_endpoint")
def wait_endpoint(ctx: ExecContext, step: Step) -> None:
    wait_for_endpoint(ctx.aws, ctx.env, step.name, step.params, timeout=ctx.timeout, poll=ctx.poll)


@handles("wait_endpoint_deleted")
def wait_endpoint_deleted(ctx: ExecContext, step: Step) -> None:
    wait_for_endpoint_gone(ctx.aws, ctx.env, step.name, timeout=ctx.timeout, poll=ctx.poll)


def delete_endpoint(aws: Any, name: str) -> bool:
    return _delete(aws, "DeleteEndpoint", name, lambda c: c.delete_endpoint(EndpointName=name))


def delete_endpoint_config(aws: Any, name: str) -> bool:
    return _delete(aws, "DeleteEndpointConfig", name, lambda c: c.delete_endpoint_config(EndpointConfigName=name))


def delete_model(aws: Any, name: str) -> bool:
    return _delete(aws, "DeleteModel", name, lambda c: c.delete_model(ModelName=name))


def _delete(aws: Any, op: str, name: str, call: Any) -> bool:
    """Delete; 'already gone' counts as success and returns False."""
    try:
        with aws_call(f"sagemaker:{op}", name):
            call(aws.client("sagemaker"))
        return True
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return False
        raise
