"""What the production sections of the experiment file ask for, as inert frozen specs.

``autoscaling:``, ``endpoint.update:`` and ``gateway:`` arrive raw in ``Desired.extra`` (the schema in
``sme.config`` has validated their shape); this module turns them into specs with every default filled
in and every cross-field rule checked. Pure: no AWS, no files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sme.core.models import Desired
from sme.errors import ConfigError
from sme.units import parse_duration

INVOCATIONS = "SageMakerVariantInvocationsPerInstance"
DEFAULT_TARGETS = {"invocations": 70.0, "cpu": 60.0}
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class ScalingSpec:
    variant: str
    resource_id: str  # endpoint/<endpoint>/variant/<variant>
    min: int
    max: int
    policy_name: str
    policy: str  # TargetTrackingScalingPolicyConfiguration as canonical JSON

    @property
    def policy_config(self) -> dict[str, Any]:
        return json.loads(self.policy)


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    metric: str
    namespace: str
    statistic: str
    threshold: float
    dimensions: tuple[tuple[str, str], ...]
    description: str


@dataclass(frozen=True)
class UpdateSpec:
    deployment_config: str  # DeploymentConfig as canonical JSON ("" for SageMaker's default)
    summary: str
    alarms: tuple[AlarmSpec, ...] = ()  # alarms sme creates (alarms: auto)


@dataclass(frozen=True)
class GatewaySpec:
    experiment: str
    endpoint_arn: str
    stage: str
    path: str
    content_type: str
    rate: float
    burst: int
    quota_limit: int
    quota_period: str
    timeout: int
    memory: int

    @property
    def function_name(self) -> str:
        return f"sme-{self.experiment}-proxy"

    @property
    def role_name(self) -> str:
        return f"sme-{self.experiment}-proxy"

    @property
    def api_name(self) -> str:
        return f"sme-{self.experiment}"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function_name}"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(endpoint: str, variant: str) -> str:
    return f"sme-{endpoint}-{variant}-tracking"


def scaling_specs(desired: Desired, source: str = "experiment file") -> tuple[ScalingSpec, ...]:
    raw = desired.extra.get("autoscaling")
    if not raw:
        return ()
    if "max" not in raw:
        raise ConfigError(source, "autoscaling.max", "is required", hint="set autoscaling.max or pass --max")
    metric = raw.get("metric", "invocations")
    target = raw.get("target")
    if target is None:
        if isinstance(metric, dict):
            raise ConfigError(source, "autoscaling.target", "is required with a custom metric",
                              hint="set the value the metric should hold per instance, or pass --target")
        target = DEFAULT_TARGETS[metric]
    specs = []
    for variant in desired.config.variants:
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
        config.update(_metric(metric, desired.endpoint_name, variant.name))
        specs.append(ScalingSpec(variant.name, resource_id(desired.endpoint_name, variant.name), low,
                                 int(raw["max"]), policy_name(desired.endpoint_name, variant.name),
                                 json.dumps(config, sort_keys=True)))
    return tuple(specs)


def _metric(metric: Any, endpoint: str, variant: str) -> dict[str, Any]:
    if metric == "invocations":
        return {"PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS}}
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


def update_spec(desired: Desired) -> UpdateSpec | None:
    raw = desired.extra.get("update")
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
        created = auto_alarms(desired, int(raw.get("error_threshold", 5)),
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


def auto_alarms(desired: Desired, errors_per_minute: int, latency_s: float) -> tuple[AlarmSpec, ...]:
    """Per variant: 5XX errors and average model latency (CloudWatch reports it in microseconds)."""
    out = []
    for v in desired.config.variants:
        dims = (("EndpointName", desired.endpoint_name), ("VariantName", v.name))
        base = f"sme-{desired.endpoint_name}-{v.name}"
        out.append(AlarmSpec(f"{base}-5xx", "Invocation5XXErrors", "AWS/SageMaker", "Sum", float(errors_per_minute),
                             dims, f"{v.name}: {errors_per_minute}+ 5XX errors in a minute; rolls back updates"))
        out.append(AlarmSpec(f"{base}-latency", "ModelLatency", "AWS/SageMaker", "Average", latency_s * 1e6, dims,
                             f"{v.name}: average model latency above {latency_s * 1000:g} ms; rolls back updates"))
    return tuple(out)


def gateway_spec(desired: Desired, account: str) -> GatewaySpec | None:
    raw = desired.extra.get("gateway")
    if raw is None:
        return None
    partition = "aws-cn" if desired.region.startswith("cn-") else "aws"
    arn = f"arn:{partition}:sagemaker:{desired.region}:{account}:endpoint/{desired.endpoint_name.lower()}"
    throttle, quota = raw.get("throttle", {}), raw.get("quota", {})
    return GatewaySpec(
        experiment=desired.experiment, endpoint_arn=arn, stage=raw.get("stage", "prod"),
        path=raw.get("path", "invoke"), content_type=raw.get("content_type", "text/csv"),
        rate=float(throttle.get("rate", 50)), burst=int(throttle.get("burst", 100)),
        quota_limit=int(quota.get("limit", 100_000)), quota_period=quota.get("period", "DAY"),
        timeout=int(parse_duration(raw.get("timeout", 29))), memory=int(raw.get("memory", 256)),
    )
