"""What moto's Application Auto Scaling lacks and sme needs: DescribeScalingActivities, and the alarms of
a SageMaker target-tracking policy.

AWS behaviour reproduced (Application Auto Scaling's PutScalingPolicy and target tracking guide): a
target-tracking policy on a SageMaker variant creates two CloudWatch alarms it owns,
``TargetTracking-<resource>-AlarmHigh-<uuid>`` (the metric above the target for 3 minutes) and
``...-AlarmLow-<uuid>`` (below 90% of the target for 15 minutes), listed in the policy's ``Alarms`` and
deleted with it (moto makes them for DynamoDB and ECS only). Putting a policy is not itself a scaling
activity.

``install()`` patches moto's backend and responses in this process (moto internals: the moto version is
pinned). Activities live on the backend, so ``/moto-api/reset`` clears them, and come from:

- ``RegisterScalableTarget`` on an existing target whose capacity bounds change (what AWS reports as
  "Setting desired count" when the current count falls outside the new bounds is simplified to one
  Successful activity per change);
- ``add_activity(...)``: tests and local mode append their own (a scale-out, a failure).

Also reproduced: PutScalingPolicy on an existing policy updates it in place (the same PolicyARN, which a
step-scaling policy's alarm names; a target-tracking policy's alarms are replaced, not left behind: moto made a
new ARN and kept the old alarms); and RegisterScalableTarget refuses MinCapacity 0 for the variant of a
real-time endpoint (only asynchronous endpoints scale to zero: "Autoscale an asynchronous endpoint"; the
message's wording is the twin's).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone
from typing import Any

_INSTALLED = False
_SEQ = itertools.count()


def _activities(backend: Any) -> list[dict[str, Any]]:
    if not hasattr(backend, "_sme_activities"):
        backend._sme_activities = []
    return backend._sme_activities


def add_activity(resource_id: str, description: str, *, status: str = "Successful", cause: str = "",
                 namespace: str = "sagemaker", dimension: str = "sagemaker:variant:DesiredInstanceCount",
                 start: datetime | None = None, account_id: str = "123456789012",
                 region: str = "us-east-1") -> dict[str, Any]:
    """Record a scaling activity as if AWS had run it; returns it."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    return _record(applicationautoscaling_backends[account_id][region], namespace, resource_id, dimension,
                   description, cause or description, status, start)


def _record(backend: Any, namespace: str, resource_id: str, dimension: str, description: str, cause: str,
            status: str = "Successful", start: datetime | None = None) -> dict[str, Any]:
    now = start or datetime.now(timezone.utc)
    activity = {
        "ActivityId": str(uuid.uuid4()), "ServiceNamespace": namespace, "ResourceId": resource_id,
        "ScalableDimension": dimension, "Description": description, "Cause": cause,
        "StartTime": now, "EndTime": now, "StatusCode": status, "StatusMessage": status, "_seq": next(_SEQ)}
    _activities(backend).append(activity)
    return activity


def install() -> None:
    """Patch moto's Application Auto Scaling backend and responses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import json

    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend, FakeApplicationAutoscalingPolicy
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

    orig_register = ApplicationAutoscalingBackend.register_scalable_target
    orig_put_policy = ApplicationAutoscalingBackend.put_scaling_policy
    orig_create_alarms = FakeApplicationAutoscalingPolicy.create_alarms

    def register_scalable_target(self: Any, namespace: str, r_id: str, dimension: str, min_capacity: Any,
                                 max_capacity: Any, role_arn: str, suspended_state: Any) -> Any:
        if namespace == "sagemaker" and min_capacity is not None and int(min_capacity) == 0:
            _refuse_zero_for_real_time(self.account_id, self.region_name, r_id)
        before = self.targets.get(dimension, {}).get(r_id)
        bounds = (before.min_capacity, before.max_capacity) if before else None
        target = orig_register(self, namespace, r_id, dimension, min_capacity, max_capacity, role_arn,
                               suspended_state)
        if bounds is not None and bounds != (target.min_capacity, target.max_capacity):
            _record(self, namespace, r_id, dimension,
                    f"Setting capacity bounds to min {target.min_capacity}, max {target.max_capacity}",
                    "scalable target registered with new bounds")
        return target

    def put_scaling_policy(self: Any, policy_name: str, service_namespace: str, resource_id: str,
                           scalable_dimension: str, policy_body: Any, policy_type: Any) -> Any:
        key = FakeApplicationAutoscalingPolicy.formulate_key(service_namespace, resource_id, scalable_dimension,
                                                             policy_name)
        before = self.policies.get(key)
        policy = orig_put_policy(self, policy_name, service_namespace, resource_id, scalable_dimension,
                                 policy_body, policy_type)
        if before is not None:  # an update: the policy keeps its identity, its alarms are made anew
            before.delete_alarms(self.account_id, self.region_name)
            policy.delete_alarms(self.account_id, self.region_name)
            policy._guid, policy.policy_arn, policy.creation_time = before._guid, before.policy_arn, before.creation_time
            policy.alarms = []
            policy.create_alarms()
        return policy

    def create_alarms(self: Any) -> None:
        orig_create_alarms(self)
        if self.policy_type == "TargetTrackingScaling" and self.service_namespace == "sagemaker":
            self.alarms.extend(_sagemaker_alarms(self))

    def describe_scaling_activities(self: Any) -> str:
        namespace = self._get_param("ServiceNamespace")
        resource_id = self._get_param("ResourceId")
        dimension = self._get_param("ScalableDimension")
        limit = self._get_int_param("MaxResults") or 50
        start = int(self._get_param("NextToken") or 0)
        found = [a for a in _activities(self.applicationautoscaling_backend)
                 if a["ServiceNamespace"] == namespace and (not resource_id or a["ResourceId"] == resource_id)
                 and (not dimension or a["ScalableDimension"] == dimension)]
        found.sort(key=lambda a: (a["StartTime"], a["_seq"]), reverse=True)  # newest first, as AWS
        page = found[start:start + limit]
        body: dict[str, Any] = {"ScalingActivities": [
            {**{k: v for k, v in a.items() if k != "_seq"},
             "StartTime": a["StartTime"].timestamp(), "EndTime": a["EndTime"].timestamp()} for a in page]}
        if start + limit < len(found):
            body["NextToken"] = str(start + limit)
        return json.dumps(body)

    ApplicationAutoscalingBackend.register_scalable_target = register_scalable_target
    ApplicationAutoscalingBackend.put_scaling_policy = put_scaling_policy
    FakeApplicationAutoscalingPolicy.create_alarms = create_alarms
    ApplicationAutoScalingResponse.describe_scaling_activities = describe_scaling_activities
    _INSTALLED = True


def _refuse_zero_for_real_time(account_id: str, region: str, resource_id: str) -> None:
    from moto.applicationautoscaling.exceptions import AWSValidationException
    from moto.sagemaker.models import sagemaker_backends

    parts = resource_id.split("/")
    backend = sagemaker_backends[account_id][region]
    endpoint = backend.endpoints.get(parts[1]) if len(parts) == 4 and parts[0] == "endpoint" else None
    config = backend.endpoint_configs.get(endpoint.endpoint_config_name) if endpoint else None
    if config is not None and not getattr(config, "async_inference_config", None):
        raise AWSValidationException(
            f"MinCapacity 0 is not supported for {resource_id}: only the variants of asynchronous inference "
            "endpoints scale to zero instances.")


def _sagemaker_alarms(policy: Any) -> list[Any]:
    """AlarmHigh and AlarmLow on the policy's metric, as target tracking creates them for a SageMaker variant."""
    from moto.cloudwatch.models import cloudwatch_backends

    config = policy.target_tracking_scaling_policy_configuration or {}
    target = float(config.get("TargetValue", 0))
    custom = config.get("CustomizedMetricSpecification") or {}
    _, endpoint, _, variant = (policy.resource_id.split("/") + ["", "", "", ""])[:4]
    metric = {"namespace": custom.get("Namespace", "AWS/SageMaker"),
              "metric_name": custom.get("MetricName", "InvocationsPerInstance"),
              "statistic": custom.get("Statistic", "Sum"),
              "dimensions": custom.get("Dimensions") or [{"Name": "EndpointName", "Value": endpoint},
                                                         {"Name": "VariantName", "Value": variant}]}
    action = f"{policy.policy_arn}:createdBy/{uuid.uuid4()}"
    cloudwatch = cloudwatch_backends[policy.account_id][policy.region_name]
    return [cloudwatch.put_metric_alarm(
        name=f"TargetTracking-{policy.resource_id}-{kind}-{uuid.uuid4()}", metric_data_queries=[],
        comparison_operator=operator, evaluation_periods=periods, period=60, threshold=threshold,
        description=f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {action}.",
        alarm_actions=[action], **metric)
        for kind, operator, periods, threshold in (("AlarmHigh", "GreaterThanThreshold", 3, target),
                                                   ("AlarmLow", "LessThanThreshold", 15, target * 0.9))]
