"""Inert data: what the user wants (Desired), what AWS has (Observed). No behaviour lives here.

``Desired`` is the experiment file resolved (``sme.core.resolve``): every name, ARN and default filled in,
one typed field per section of the file (model, endpoint, ``autoscaling:``, ``endpoint.update:``,
``gateway:``). ``Observed`` is what the one reader of AWS state (``sme.core.observe``) found for it. The
planner turns the two into a Plan of the step kinds declared in ``sme.core.steps``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sme.endpoint_kinds import AsyncInference, Serverless

EXPERIMENT_TAG = "sme:experiment"


@dataclass(frozen=True)
class DesiredArtifact:
    """A local model.tar.gz to upload under a content-hash key."""

    local_path: str
    bucket: str
    key: str
    sha256: str
    size: int
    default_bucket: bool = False  # sme's own bucket (sme-<account>-<region>), shared by experiments

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class DesiredRole:
    name: str
    arn: str
    path: str
    trust_policy: str  # JSON
    policy_name: str
    policy: str  # JSON


@dataclass(frozen=True)
class DesiredModel:
    name: str
    image: str
    model_data_url: str
    role_arn: str
    environment: tuple[tuple[str, str], ...]
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    network_isolation: bool


@dataclass(frozen=True)
class DesiredVariant:
    name: str
    instance_type: str | None  # None: serverless
    count: int
    weight: float
    serverless: Serverless | None = None


@dataclass(frozen=True)
class DesiredConfig:
    """An endpoint config: its name carries a hash of everything here, so any change is a new config."""

    name: str
    model_name: str
    variants: tuple[DesiredVariant, ...]
    async_inference: AsyncInference | None = None


@dataclass(frozen=True)
class AlarmSpec:
    """A CloudWatch alarm sme creates: to roll a guarded update back (``endpoint.update.alarms: auto``), or to
    wake an asynchronous endpoint from zero instances (its actions: the wake-up policy, known once it exists)."""

    name: str
    metric: str
    namespace: str
    statistic: str
    threshold: float
    dimensions: tuple[tuple[str, str], ...]
    description: str
    period: int = 60
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    comparison: str = "GreaterThanOrEqualToThreshold"
    treat_missing_data: str = "notBreaching"

    @property
    def definition(self) -> str:
        """What DescribeAlarms shows of it (less its actions), as canonical JSON: see ``observe.alarm_definition``."""
        return json.dumps({
            "MetricName": self.metric, "Namespace": self.namespace, "Statistic": self.statistic,
            "Dimensions": sorted([k, v] for k, v in self.dimensions), "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods, "DatapointsToAlarm": self.datapoints_to_alarm,
            "Threshold": float(self.threshold), "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing_data}, sort_keys=True)


@dataclass(frozen=True)
class WakeSpec:
    """``autoscaling.min: 0`` on an asynchronous endpoint: the step-scaling policy that adds an instance when
    requests wait with none, and the alarm on HasBacklogWithoutCapacity that triggers it."""

    policy_name: str
    policy: str  # StepScalingPolicyConfiguration as canonical JSON
    alarm: AlarmSpec

    @property
    def policy_config(self) -> dict[str, Any]:
        return json.loads(self.policy)


@dataclass(frozen=True)
class ScalingSpec:
    """``autoscaling:`` for one variant: its scalable target, target-tracking policy and, when it may scale to
    zero, the policy that wakes it."""

    variant: str
    resource_id: str  # endpoint/<endpoint>/variant/<variant>
    min: int
    max: int
    policy_name: str
    policy: str  # TargetTrackingScalingPolicyConfiguration as canonical JSON
    wake: WakeSpec | None = None

    @property
    def policy_config(self) -> dict[str, Any]:
        return json.loads(self.policy)


@dataclass(frozen=True)
class UpdateSpec:
    """``endpoint.update:``: how SageMaker shifts traffic to a new fleet, and which alarms roll it back."""

    deployment_config: str  # DeploymentConfig as canonical JSON ("" for SageMaker's default)
    summary: str
    alarms: tuple[AlarmSpec, ...] = ()  # alarms sme creates (alarms: auto)


@dataclass(frozen=True)
class GatewaySpec:
    """``gateway:``: the front door (a Lambda proxy behind an API Gateway REST API with an API key)."""

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
    function_name: str
    role_name: str
    api_name: str
    log_group: str
    role_policy: str = ""  # the proxy role's inline policy, canonical JSON
    log_retention_days: int = 30
    code_sha256: str = ""  # of the proxy's deployment package

    @property
    def usage_limits(self) -> tuple:
        """The usage plan's limits, as compared with what API Gateway reports."""
        return (float(self.rate), int(self.burst), int(self.quota_limit), self.quota_period)


@dataclass(frozen=True)
class Desired:
    experiment: str
    region: str
    endpoint_name: str
    model: DesiredModel
    config: DesiredConfig
    artifact: DesiredArtifact | None = None
    role: DesiredRole | None = None
    tags: tuple[tuple[str, str], ...] = ()
    scaling: tuple[ScalingSpec, ...] = ()
    update: UpdateSpec | None = None
    gateway: GatewaySpec | None = None

    @property
    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags]


@dataclass(frozen=True)
class VariantView:
    name: str
    current_instances: int | None
    desired_instances: int | None
    current_weight: float | None = None


@dataclass(frozen=True)
class EndpointView:
    name: str
    status: str
    config_name: str
    failure_reason: str | None = None
    variants: tuple[VariantView, ...] = ()
    arn: str = ""


@dataclass(frozen=True)
class ScalingView:
    resource_id: str
    min: int
    max: int
    policies: tuple[tuple[str, str], ...] = ()  # (policy name, canonical JSON of its configuration)
    arns: tuple[tuple[str, str], ...] = ()  # (policy name, its PolicyARN)


@dataclass(frozen=True)
class GatewayView:
    """The front door's pieces that exist, found by their names."""

    parts: tuple[tuple[str, str], ...] = ()  # (part, id or name): gateway-role, log-group, lambda, ...
    function_sha: str = ""  # the live proxy function's CodeSha256
    usage_limits: tuple = ()  # the live usage plan's (rate, burst, quota limit, quota period)
    gaps: tuple[tuple[str, str], ...] = ()  # (part, what is missing) of pieces that exist half made

    @property
    def have(self) -> dict[str, str]:
        return dict(self.parts)

    def gap(self, part: str) -> str | None:
        return "; ".join(what for p, what in self.gaps if p == part) or None


@dataclass(frozen=True)
class Observed:
    bucket_exists: bool = False
    bucket_gap: str | None = None  # what a bucket sme made lacks (public access block, tags)
    artifact_exists: bool = False
    role_exists: bool = False
    role_policy: str | None = None
    model_exists: bool = False
    config_exists: bool = False
    endpoint: EndpointView | None = None
    scaling: tuple[ScalingView, ...] = ()
    alarms: frozenset[str] = frozenset()  # those of ours that exist
    wake_alarms: tuple[tuple[str, str], ...] = ()  # (name, canonical JSON) of the wake-up alarms that exist
    gateway: GatewayView = GatewayView()
