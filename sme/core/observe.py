"""The one reader of AWS state: what AWS has now of each section of an experiment. Describe, list, get and
head calls only; never a mutating one.

The front door's pieces are found by their names (``sme.core.names``), so a lost state file does not make
the planner create a second API; what the state file recorded decides only whether a removed section
must be looked for at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sme.aws import AwsContext, aws_call, if_found
from sme.core import names
from sme.core.models import Desired, EndpointView, GatewayView, Observed, ScalingView, VariantView
from sme.core.observe_gateway import inline_policy, read_gateway
from sme.state import DeployState

GATEWAY_KINDS = ("gateway-api", "lambda", "usage-plan", "gateway-key", "gateway-role")
POLICY_KEYS = ("TargetValue", "ScaleInCooldown", "ScaleOutCooldown", "DisableScaleIn",
               "PredefinedMetricSpecification", "CustomizedMetricSpecification")


class RemoteState:
    def __init__(self, aws: AwsContext):
        self.aws = aws

    def observe(self, desired: Desired, recorded: DeployState | None = None) -> Observed:
        """Everything the planner compares with ``desired``. ``recorded``, the state file, says what sme made
        earlier: a front door is looked for even when its section is gone, and a bucket sme made (or sme's
        default bucket) is checked for what an interrupted deploy may have left out."""
        recorded = recorded or DeployState(desired.experiment)
        art, role = desired.artifact, desired.role
        bucket_exists = self.bucket_exists(art.bucket) if art else False
        observed = Observed(
            bucket_exists=bucket_exists,
            bucket_gap=self.bucket_gap(art.bucket) if art and bucket_exists and (
                art.default_bucket or recorded.find("bucket", art.bucket)) else None,
            artifact_exists=self.object_exists(art.bucket, art.key) if art else False,
            role_exists=self.role_exists(role.name) if role else False,
            role_policy=self.role_policy(role.name, role.policy_name) if role else None,
            model_exists=self.model_exists(desired.model.name),
            config_exists=self.config_exists(desired.config.name),
            endpoint=self.endpoint(desired.endpoint_name),
        )
        return replace(observed, **self._sections(desired, observed.endpoint, recorded))

    def _sections(self, desired: Desired, endpoint: EndpointView | None, recorded: DeployState) -> dict:
        """What AWS has of ``autoscaling:`` (and its wake-up alarms), ``endpoint.update:``'s alarms and ``gateway:``."""
        variants = {v.name for v in desired.config.variants} | {v.name for v in (endpoint.variants if endpoint else ())}
        alarms = [a.name for a in desired.update.alarms] if desired.update else []
        gateway = desired.gateway is not None or any(r.kind in GATEWAY_KINDS for r in recorded.resources)
        keys = frozenset(recorded.outputs) | frozenset(recorded.secrets)
        scaling = self.scaling([names.scaling_resource_id(desired.endpoint_name, v) for v in sorted(variants)]) \
            if endpoint else ()
        # a wake-up alarm is looked for when one is wanted or its policy is live (to be removed with it)
        wake = [names.wake_alarm_name(desired.endpoint_name, v) for v in sorted(variants)
                if any(spec.wake for spec in desired.scaling) or any(
                    names.wake_policy_name(desired.endpoint_name, v) in dict(view.policies) for view in scaling)]
        return {
            "scaling": scaling,
            "alarms": self.existing_alarms(alarms) if alarms else frozenset(),
            "wake_alarms": self.alarm_definitions(wake) if wake else (),
            "gateway": read_gateway(self.aws, desired.experiment, desired.gateway, keys) if gateway else GatewayView(),
        }

    # -- S3 --------------------------------------------------------------------------------------
    def bucket_exists(self, bucket: str) -> bool:
        return self._exists("s3", "HeadBucket", bucket, lambda c: c.head_bucket(Bucket=bucket))

    def bucket_gap(self, bucket: str) -> str | None:
        """What a bucket sme made lacks of what sme puts on it (an interrupted deploy): None when nothing."""
        s3 = self.aws.client("s3")
        block = if_found("s3:GetPublicAccessBlock", bucket, lambda: s3.get_public_access_block(Bucket=bucket))
        if not block or not all(block["PublicAccessBlockConfiguration"].values()):
            return "public access is not blocked"
        tags = if_found("s3:GetBucketTagging", bucket, lambda: s3.get_bucket_tagging(Bucket=bucket))
        if not tags or {"Key": "sme:managed", "Value": "true"} not in tags.get("TagSet", []):
            return "it lacks sme's tags"
        return None

    def object_exists(self, bucket: str, key: str) -> bool:
        return self._exists("s3", "HeadObject", f"s3://{bucket}/{key}", lambda c: c.head_object(Bucket=bucket, Key=key))

    # -- IAM -------------------------------------------------------------------------------------
    def role_exists(self, name: str) -> bool:
        return self._exists("iam", "GetRole", name, lambda c: c.get_role(RoleName=name))

    def role_policy(self, role: str, policy: str) -> str | None:
        """The inline policy as canonical JSON (sorted keys), as ``DesiredRole.policy`` is written."""
        return inline_policy(self.aws.client("iam"), role, policy)

    # -- SageMaker -------------------------------------------------------------------------------
    def model_exists(self, name: str) -> bool:
        return self._exists("sagemaker", "DescribeModel", name, lambda c: c.describe_model(ModelName=name))

    def config_exists(self, name: str) -> bool:
        return self.describe_endpoint_config(name) is not None

    def endpoint(self, name: str) -> EndpointView | None:
        raw = self.describe_endpoint(name)
        return endpoint_view(raw) if raw else None

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        client = self.aws.client("sagemaker")
        return if_found("sagemaker:DescribeEndpoint", name, lambda: client.describe_endpoint(EndpointName=name))

    def describe_endpoint_config(self, name: str) -> dict[str, Any] | None:
        client = self.aws.client("sagemaker")
        return if_found("sagemaker:DescribeEndpointConfig", name,
                        lambda: client.describe_endpoint_config(EndpointConfigName=name))

    # -- Application Auto Scaling, CloudWatch -----------------------------------------------------------
    def scaling(self, resource_ids: list[str]) -> tuple[ScalingView, ...]:
        client = self.aws.client("application-autoscaling")
        with aws_call("application-autoscaling:DescribeScalableTargets", ", ".join(resource_ids)):
            targets = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=resource_ids,
                                                       ScalableDimension=names.SCALABLE_DIMENSION)["ScalableTargets"]
        views = []
        for t in targets:
            with aws_call("application-autoscaling:DescribeScalingPolicies", t["ResourceId"]):
                policies = client.describe_scaling_policies(
                    ServiceNamespace="sagemaker", ResourceId=t["ResourceId"],
                    ScalableDimension=names.SCALABLE_DIMENSION)["ScalingPolicies"]
            views.append(ScalingView(t["ResourceId"], int(t["MinCapacity"]), int(t["MaxCapacity"]), tuple(
                (p["PolicyName"], canonical_step_policy(p["StepScalingPolicyConfiguration"])
                 if "StepScalingPolicyConfiguration" in p else
                 canonical_policy(p.get("TargetTrackingScalingPolicyConfiguration", {}))) for p in policies),
                tuple((p["PolicyName"], p.get("PolicyARN", "")) for p in policies)))
        return tuple(views)

    def existing_alarms(self, alarm_names: list[str]) -> frozenset[str]:
        return frozenset(name for name, _ in self.alarm_definitions(alarm_names))

    def alarm_definitions(self, alarm_names: list[str]) -> tuple[tuple[str, str], ...]:
        """(name, ``alarm_definition``) of those of the named alarms that exist."""
        with aws_call("cloudwatch:DescribeAlarms", ", ".join(alarm_names)):
            found = self.aws.client("cloudwatch").describe_alarms(AlarmNames=alarm_names)["MetricAlarms"]
        return tuple((a["AlarmName"], alarm_definition(a)) for a in found)

    def _exists(self, service: str, op: str, resource: str, call: Any) -> bool:
        client = self.aws.client(service)
        return if_found(f"{service}:{op}", resource, lambda: call(client)) is not None


def canonical_policy(config: dict[str, Any]) -> str:
    """A target-tracking configuration as canonical JSON, comparable with ``ScalingSpec.policy``."""
    out = {k: config[k] for k in POLICY_KEYS if k in config}
    out["TargetValue"] = float(out.get("TargetValue", 0))
    out["DisableScaleIn"] = bool(out.get("DisableScaleIn", False))
    return json.dumps(out, sort_keys=True)


def canonical_step_policy(config: dict[str, Any]) -> str:
    """A step-scaling configuration as canonical JSON, comparable with ``WakeSpec.policy``."""
    out: dict[str, Any] = {k: config[k] for k in ("AdjustmentType", "MetricAggregationType") if k in config}
    for key in ("Cooldown", "MinAdjustmentMagnitude"):
        if key in config:
            out[key] = int(config[key])
    out["StepAdjustments"] = [
        {**{k: float(a[k]) for k in ("MetricIntervalLowerBound", "MetricIntervalUpperBound") if k in a},
         "ScalingAdjustment": int(a["ScalingAdjustment"])} for a in config.get("StepAdjustments", [])]
    return json.dumps(out, sort_keys=True)


def alarm_definition(raw: dict[str, Any]) -> str:
    """What ``AlarmSpec.definition`` holds, from a DescribeAlarms entry, plus its ``AlarmActions``."""
    return json.dumps({
        "MetricName": raw.get("MetricName"), "Namespace": raw.get("Namespace"), "Statistic": raw.get("Statistic"),
        "Dimensions": sorted([d["Name"], d["Value"]] for d in raw.get("Dimensions", [])),
        "Period": raw.get("Period"), "EvaluationPeriods": raw.get("EvaluationPeriods"),
        "DatapointsToAlarm": raw.get("DatapointsToAlarm"), "Threshold": float(raw.get("Threshold", 0)),
        "ComparisonOperator": raw.get("ComparisonOperator"), "TreatMissingData": raw.get("TreatMissingData"),
        "AlarmActions": sorted(raw.get("AlarmActions", []))}, sort_keys=True)


def endpoint_view(raw: dict[str, Any]) -> EndpointView:
    variants = tuple(
        VariantView(v["VariantName"], v.get("CurrentInstanceCount"), v.get("DesiredInstanceCount"),
                    v.get("CurrentWeight"))
        for v in raw.get("ProductionVariants", [])
    )
    # while updating, AWS shows the old config and the one being deployed in PendingDeploymentSummary: the
    # endpoint is on its way to that one (a deploy resumed meanwhile waits for it, not for the old)
    pending = (raw.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    return EndpointView(raw["EndpointName"], raw["EndpointStatus"], pending or raw.get("EndpointConfigName", ""),
                        raw.get("FailureReason"), variants, raw.get("EndpointArn", ""))
