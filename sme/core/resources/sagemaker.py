"""SageMaker: model, endpoint config, endpoint (create, update, wait, delete)."""

from __future__ import annotations

import json
from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.models import DesiredVariant
from sme.endpoint_kinds import AsyncInference
from sme.core.resources.iam import while_role_propagates
from sme.core.waiter import wait_for_endpoint, wait_for_endpoint_gone


def create_model(ctx: ExecContext, step: steps.CreateModel) -> None:
    model = step.model
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


def create_endpoint_config(ctx: ExecContext, step: steps.CreateEndpointConfig) -> None:
    config = step.config
    kwargs: dict[str, Any] = {"EndpointConfigName": config.name, "Tags": ctx.tags,
                              "ProductionVariants": [_variant(config.model_name, v) for v in config.variants]}
    extra: dict[str, Any] = {"model": config.model_name}
    if config.async_inference:
        kwargs["AsyncInferenceConfig"] = _async_config(config.async_inference)
        extra["async_output"] = config.async_inference.output  # the user's: teardown says where, deletes nothing
    with aws_call("sagemaker:CreateEndpointConfig", config.name):
        reply = ctx.aws.client("sagemaker").create_endpoint_config(**kwargs)
    ctx.record("endpoint-config", config.name, reply["EndpointConfigArn"], **extra)


def _variant(model_name: str, v: DesiredVariant) -> dict[str, Any]:
    out: dict[str, Any] = {"VariantName": v.name, "ModelName": model_name, "InitialVariantWeight": v.weight}
    if v.serverless:
        out["ServerlessConfig"] = {"MemorySizeInMB": v.serverless.memory_mb,
                                   "MaxConcurrency": v.serverless.max_concurrency}
        if v.serverless.provisioned_concurrency:
            out["ServerlessConfig"]["ProvisionedConcurrency"] = v.serverless.provisioned_concurrency
    else:
        out.update(InstanceType=v.instance_type, InitialInstanceCount=v.count)
    return out


def _async_config(spec: AsyncInference) -> dict[str, Any]:
    output: dict[str, Any] = {"S3OutputPath": spec.output}
    if spec.failure:
        output["S3FailurePath"] = spec.failure
    notify = {k: v for k, v in (("SuccessTopic", spec.success_topic), ("ErrorTopic", spec.error_topic)) if v}
    if notify:
        output["NotificationConfig"] = notify
    out: dict[str, Any] = {"OutputConfig": output}
    if spec.max_concurrent_per_instance:
        out["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": spec.max_concurrent_per_instance}
    return out


def create_endpoint(ctx: ExecContext, step: steps.CreateEndpoint) -> None:
    with aws_call("sagemaker:CreateEndpoint", step.name):
        reply = ctx.aws.client("sagemaker").create_endpoint(
            EndpointName=step.name, EndpointConfigName=step.config_name, Tags=ctx.tags)
    ctx.record("endpoint", step.name, reply["EndpointArn"])
    ctx.state.push_endpoint_config(step.config_name)
    ctx.save()


def update_endpoint(ctx: ExecContext, step: steps.UpdateEndpoint) -> None:
    kwargs: dict[str, Any] = {"EndpointName": step.name, "EndpointConfigName": step.config_name}
    if step.retain:
        kwargs["RetainAllVariantProperties"] = True
    if step.deployment_config:
        kwargs["DeploymentConfig"] = json.loads(step.deployment_config)
    with aws_call("sagemaker:UpdateEndpoint", step.name):
        ctx.aws.client("sagemaker").update_endpoint(**kwargs)
    if not ctx.state.find("endpoint", step.name):
        ctx.record("endpoint", step.name)
    ctx.state.push_endpoint_config(step.config_name)
    ctx.save()


def delete_failed_endpoint(ctx: ExecContext, step: steps.DeleteEndpoint) -> None:
    _delete_endpoint_call(ctx, step.name)


def wait_endpoint(ctx: ExecContext, step: steps.WaitEndpoint) -> None:
    wait_for_endpoint(ctx.aws, ctx.env, step.name, step.config_name, timeout=ctx.timeout, poll=ctx.poll)


def wait_endpoint_deleted(ctx: ExecContext, step: steps.WaitEndpointDeleted) -> None:
    wait_for_endpoint_gone(ctx.aws, ctx.env, step.name, timeout=ctx.timeout, poll=ctx.poll)


def _delete_endpoint_call(ctx: ExecContext, name: str) -> bool:
    sm = ctx.aws.client("sagemaker")
    return if_found("sagemaker:DeleteEndpoint", name, lambda: sm.delete_endpoint(EndpointName=name)) is not None


def delete_endpoint(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    """Delete, then wait until it is gone: the role and network must outlive the endpoint's own cleanup."""
    deleted = _delete_endpoint_call(ctx, name)
    if deleted:
        wait_for_endpoint_gone(ctx.aws, ctx.env, name, timeout=ctx.timeout, poll=ctx.poll)
    return deleted


def delete_endpoint_config(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    sm = ctx.aws.client("sagemaker")
    return if_found("sagemaker:DeleteEndpointConfig", name,
                    lambda: sm.delete_endpoint_config(EndpointConfigName=name)) is not None


def delete_model(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    sm = ctx.aws.client("sagemaker")
    return if_found("sagemaker:DeleteModel", name, lambda: sm.delete_model(ModelName=name)) is not None


HANDLERS = {
    steps.CreateModel: create_model,
    steps.CreateEndpointConfig: create_endpoint_config,
    steps.CreateEndpoint: create_endpoint,
    steps.UpdateEndpoint: update_endpoint,
    steps.DeleteEndpoint: delete_failed_endpoint,
    steps.WaitEndpoint: wait_endpoint,
    steps.WaitEndpointDeleted: wait_endpoint_deleted,
}
DELETERS = {
    "endpoint": Deleter(40, delete_endpoint),
    "endpoint-config": Deleter(50, delete_endpoint_config),
    "model": Deleter(60, delete_model),
}
