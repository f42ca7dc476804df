"""Experiment (what the user wrote) -> Desired (names, URIs and ARNs, fully resolved). Reads only.

Resolution reads the caller's account (STS), hashes a local artifact and resolves a short image name;
it never changes AWS. Each section of the experiment file becomes its typed spec here, with every default
filled in and every rule across fields checked (the schema in ``sme.config`` has checked their shapes):
the model and its role, the endpoint's variants, ``autoscaling:``, ``endpoint.update:`` and ``gateway:``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sme.config import Experiment
from sme.core import names
from sme.core.images import resolve_image
from sme.core.models import (EXPERIMENT_TAG, AlarmSpec, Desired, DesiredArtifact, DesiredConfig, DesiredModel,
                             DesiredRole, DesiredVariant, GatewaySpec, ScalingSpec, UpdateSpec, WakeSpec)
from sme.errors import ConfigError
from sme.units import parse_duration

INVOCATIONS = "SageMakerVariantInvocationsPerInstance"
DEFAULT_TARGETS = {"invocations": 70.0, "cpu": 60.0, "backlog": 5.0}  # backlog: AWS's example


def resolve(exp: Experiment, region: str, account: str) -> Desired:
    image = resolve_image(exp.model.image, region, exp.variants[0].instance_type, exp.source)
    artifact = _artifact(exp, region, account)
    model_data_url = artifact.url if artifact else exp.model.model_data
    role = _role(exp, account, region, image, model_data_url) if exp.model.role == "create" else None
    role_arn = role.arn if role else exp.model.role
    model_spec = DesiredModel(
        name="", image=image, model_data_url=model_data_url, role_arn=role_arn,
        environment=exp.model.environment, subnets=tuple(sorted(exp.network.subnets)),
        security_groups=tuple(sorted(exp.network.security_groups)),
        network_isolation=exp.network.network_isolation,
    )
    model = DesiredModel(**{**model_spec.__dict__, "name": names.model_name(exp.name, model_spec)})
    variants = tuple(DesiredVariant(v.name, v.instance_type, v.count if not v.serverless else 0, v.weight,
                                    v.serverless) for v in exp.variants)
    config_spec = DesiredConfig(name="", model_name=model.name, variants=variants, async_inference=exp.async_inference)
    config = DesiredConfig(names.config_name(exp.name, config_spec), model.name, variants, exp.async_inference)
    tags = ((EXPERIMENT_TAG, exp.name),) + exp.tags
    return Desired(experiment=exp.name, region=region, endpoint_name=exp.name, model=model, config=config,
                   artifact=artifact, role=role, tags=tags,
                   scaling=scaling_specs(exp.autoscaling, exp.name, variants, exp.source,
                                         asynchronous=exp.async_inference is not None),
                   update=update_spec(exp.update, exp.name, variants),
                   gateway=gateway_spec(exp.gateway, exp.name, region, account))


def _artifact(exp: Experiment, region: str, account: str) -> DesiredArtifact | None:
    data = exp.model.model_data
    if data.startswith("s3://"):
        if len(data) <= 5 or "/" not in data[5:]:
            raise ConfigError(exp.source, "model.model_data", f"{data!r} is not s3://bucket/key",
                              hint="give the full object URI, e.g. s3://my-bucket/models/model.tar.gz")
        return None
    path = Path(data).expanduser()
    if not path.is_file():
        raise ConfigError(exp.source, "model.model_data", f"{data!r} is not a file or an s3:// URI",
                          hint="give the path of a model.tar.gz or an s3://bucket/key URI")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    bucket = exp.model.bucket or names.default_bucket(account, region)
    return DesiredArtifact(str(path.resolve()), bucket, names.artifact_key(exp.name, sha), sha, path.stat().st_size,
                           default_bucket=bucket == names.default_bucket(account, region))


def _role(exp: Experiment, account: str, region: str, image: str, model_data_url: str) -> DesiredRole:
    name = names.role_name(exp.name)
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}
    return DesiredRole(name=name, arn=f"arn:{partition}:iam::{account}:role/sme/{name}", path="/sme/",
                       trust_policy=json.dumps(trust, sort_keys=True), policy_name="sme-least-privilege",
                       policy=least_privilege_policy(exp, account, region, partition, image, model_data_url))


def least_privilege_policy(exp: Experiment, account: str, region: str, partition: str, image: str,
                           model_data_url: str) -> str:
    """What a SageMaker endpoint's execution role needs for this model, and nothing more."""
    bucket, _, key = model_data_url[5:].partition("/")
    image_account, _, rest = image.partition(".dkr.ecr.")
    image_region = rest.split(".", 1)[0]
    repo = image.split("/", 1)[1].split("@")[0].split(":")[0]
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    statements = [
        {"Sid": "ReadModelArtifact", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:{partition}:s3:::{bucket}/{key}"]},
        {"Sid": "PullImage", "Effect": "Allow",
         "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": [f"arn:{partition}:ecr:{image_region}:{image_account}:repository/{repo}"]},
        {"Sid": "EcrAuth", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{exp.name}",
                      f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{exp.name}:*"]},
        {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"],
         "Condition": {"StringLike": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/*"]}}},
    ]
    if exp.network.subnets:
        statements += [
            {"Sid": "DescribeNetwork", "Effect": "Allow",
             "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": ["*"]},
            # network interfaces only in the experiment's subnets (ec2:Subnet is a condition key of the
            # network-interface resource), made only with its subnets and security groups
            {"Sid": "EndpointNetworkInterfaces", "Effect": "Allow",
             "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"],
             "Resource": [f"{ec2}:network-interface/*"],
             "Condition": {"ArnEquals": {"ec2:Subnet": [f"{ec2}:subnet/{s}" for s in sorted(exp.network.subnets)]}}},
            {"Sid": "EndpointSubnetsAndGroups", "Effect": "Allow", "Action": ["ec2:CreateNetworkInterface"],
             "Resource": [f"{ec2}:subnet/{s}" for s in sorted(exp.network.subnets)]
             + [f"{ec2}:security-group/{g}" for g in sorted(exp.network.security_groups)]},
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def scaling_specs(raw: dict[str, Any] | None, endpoint: str, variants: tuple[DesiredVariant, ...],
                  source: str = "experiment file", asynchronous: bool = False) -> tuple[ScalingSpec, ...]:
    """``autoscaling:`` -> one scalable target and target-tracking policy per variant; an asynchronous
    endpoint tracks its backlog per instance by default, and with ``min: 0`` gets the policy that wakes it."""
    if not raw:
        return ()
    if "max" not in raw:
        raise ConfigError(source, "autoscaling.max", "is required", hint="set autoscaling.max or pass --max")
    metric = raw.get("metric", "backlog" if asynchronous else "invocations")
    target = raw.get("target")
    if target is None:
        if isinstance(metric, dict):
            raise ConfigError(source, "autoscaling.target", "is required with a custom metric",
                              hint="set the value the metric should hold per instance, or pass --target")
        target = DEFAULT_TARGETS[metric]
    specs = []
    for variant in variants:
        low = int(raw.get("min", min(variant.count, raw["max"])))
        if low > raw["max"]:
            raise ConfigError(source, "autoscaling.min", f"min {low} is above max {raw['max']}",
                              hint="make min <= max")
        config: dict[str, Any] = {
            "TargetValue": float(target),
            "ScaleInCooldown": int(parse_duration(raw.get("scale_in_cooldown", 300))),
            "ScaleOutCooldown": int(parse_duration(raw.get("scale_out_cooldown", 60))),
            "DisableScaleIn": bool(raw.get("disable_scale_in", False)),
        }
        config.update(_metric(metric, endpoint, variant.name))
        wake = wake_spec(endpoint, variant.name) if low == 0 and asynchronous else None
        specs.append(ScalingSpec(variant.name, names.scaling_resource_id(endpoint, variant.name), low,
                                 int(raw["max"]), names.scaling_policy_name(endpoint, variant.name),
                                 json.dumps(config, sort_keys=True), wake))
    return tuple(specs)


def wake_spec(endpoint: str, variant: str) -> WakeSpec:
    """The step-scaling policy and its CloudWatch alarm that scale an asynchronous endpoint up from zero
    instances as soon as a request waits, exactly as "Autoscale an asynchronous endpoint" (SageMaker developer
    guide, "Optional: Define a scaling policy that scales up from zero for new requests") documents them: add
    one instance (ChangeInCapacity +1 from a breach of 0 up, Average, cooldown 300 s) when the endpoint's
    HasBacklogWithoutCapacity averages >= 1 over 2 of 2 periods of 60 s (missing data: missing)."""
    policy = {"AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
              "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}
    alarm = AlarmSpec(names.wake_alarm_name(endpoint, variant), "HasBacklogWithoutCapacity", "AWS/SageMaker",
                      "Average", 1.0, (("EndpointName", endpoint),),
                      f"{variant}: requests wait with no instance; wakes the endpoint from zero",
                      period=60, evaluation_periods=2, datapoints_to_alarm=2,
                      comparison="GreaterThanOrEqualToThreshold", treat_missing_data="missing")
    return WakeSpec(names.wake_policy_name(endpoint, variant), json.dumps(policy, sort_keys=True), alarm)


def _metric(metric: Any, endpoint: str, variant: str) -> dict[str, Any]:
    if metric == "invocations":
        return {"PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS}}
    if metric == "backlog":
        # the customized metric of "Autoscale an asynchronous endpoint": the endpoint's queue (dimension
        # EndpointName only: the queue is the endpoint's, not a variant's) per instance
        return {"CustomizedMetricSpecification": {
            "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker", "Statistic": "Average",
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint}]}}
    dims = {"EndpointName": endpoint, "VariantName": variant}
    if metric == "cpu":
        # CPU is not a predefined SageMaker metric: it lives in the endpoint's own namespace
        return {"CustomizedMetricSpecification": {
            "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints", "Statistic": "Average",
            "Unit": "Percent", "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]}}
    spec: dict[str, Any] = {"MetricName": metric["name"], "Namespace": metric["namespace"],
                            "Statistic": metric.get("statistic", "Average")}
    given = metric.get("dimensions")
    spec["Dimensions"] = [{"Name": k, "Value": v} for k, v in (given if given is not None else dims).items()]
    if metric.get("unit"):
        spec["Unit"] = metric["unit"]
    return {"CustomizedMetricSpecification": spec}


def update_spec(raw: dict[str, Any] | None, endpoint: str, variants: tuple[DesiredVariant, ...]) -> UpdateSpec | None:
    """``endpoint.update:`` -> the DeploymentConfig of a guarded (blue/green) update, and its alarms."""
    if not raw:
        return None
    strategy = raw.get("strategy", "all-at-once")
    routing: dict[str, Any] = {"Type": strategy.upper().replace("-", "_"),
                               "WaitIntervalInSeconds": int(parse_duration(raw.get("wait", "5m")))}
    summary = f"blue/green {strategy}"
    if strategy == "canary":
        size = float(raw.get("canary_size", 10))
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": _pct(size)}
        summary += f" {_pct(size)}%"
    elif strategy == "linear":
        step = float(raw.get("linear_step", 20))
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": _pct(step)}
        summary += f" steps of {_pct(step)}%"
    summary += f", bake {routing['WaitIntervalInSeconds']}s"
    policy: dict[str, Any] = {"TrafficRoutingConfiguration": routing,
                              "TerminationWaitInSeconds": int(parse_duration(raw.get("termination_wait", "5m")))}
    if "timeout" in raw:
        policy["MaximumExecutionTimeoutInSeconds"] = int(parse_duration(raw["timeout"]))
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    alarms = raw.get("alarms")
    created: tuple[AlarmSpec, ...] = ()
    if alarms == "auto":
        created = auto_alarms(endpoint, variants, int(raw.get("error_threshold", 5)),
                              parse_duration(raw.get("latency_threshold", "1s")))
        names = [a.name for a in created]
    else:
        names = list(alarms or [])
    if names:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": n} for n in names]}
        summary += f", rolls back on {len(names)} alarm{'s' if len(names) > 1 else ''}"
    return UpdateSpec(json.dumps(config, sort_keys=True), summary, created)


def _pct(value: float) -> int:
    return max(1, min(100, int(round(value))))


def auto_alarms(endpoint: str, variants: tuple[DesiredVariant, ...], errors_per_minute: int,
                latency_s: float) -> tuple[AlarmSpec, ...]:
    """Per variant: 5XX errors and average model latency (CloudWatch reports it in microseconds)."""
    out = []
    for v in variants:
        dims = (("EndpointName", endpoint), ("VariantName", v.name))
        out.append(AlarmSpec(names.alarm_name(endpoint, v.name, "5xx"), "Invocation5XXErrors", "AWS/SageMaker", "Sum", float(errors_per_minute),
                             dims, f"{v.name}: {errors_per_minute}+ 5XX errors in a minute; rolls back updates"))
        out.append(AlarmSpec(names.alarm_name(endpoint, v.name, "latency"), "ModelLatency", "AWS/SageMaker", "Average", latency_s * 1e6, dims,
                             f"{v.name}: average model latency above {latency_s * 1000:g} ms; rolls back updates"))
    return tuple(out)


def gateway_spec(raw: dict[str, Any] | None, experiment: str, region: str, account: str) -> GatewaySpec | None:
    """``gateway:`` -> the front door's names, limits and the proxy code's hash."""
    if raw is None:
        return None
    from sme.gateway.package import code_sha256

    partition = "aws-cn" if region.startswith("cn-") else "aws"
    arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{experiment.lower()}"
    throttle, quota = raw.get("throttle", {}), raw.get("quota", {})
    log_group = names.gateway_log_group(experiment)
    return GatewaySpec(
        experiment=experiment, endpoint_arn=arn, stage=raw.get("stage", "prod"),
        path=raw.get("path", "invoke"), content_type=raw.get("content_type", "text/csv"),
        rate=float(throttle.get("rate", 50)), burst=int(throttle.get("burst", 100)),
        quota_limit=int(quota.get("limit", 100_000)), quota_period=quota.get("period", "DAY"),
        timeout=int(parse_duration(raw.get("timeout", 29))), memory=int(raw.get("memory", 256)),
        function_name=names.gateway_function_name(experiment), role_name=names.gateway_function_name(experiment),
        api_name=names.gateway_api_name(experiment), log_group=log_group,
        role_policy=proxy_policy(arn, log_group), code_sha256=code_sha256(),
    )


def proxy_policy(endpoint_arn: str, log_group: str) -> str:
    """The front door's proxy may invoke only this endpoint and write only its own log group."""
    partition, _, region, account = endpoint_arn.split(":")[1:5]
    logs = f"arn:{partition}:logs:{region}:{account}:log-group:{log_group}"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "InvokeThisEndpointOnly", "Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"],
         "Resource": [endpoint_arn]},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{logs}:*"]}]}, sort_keys=True)
