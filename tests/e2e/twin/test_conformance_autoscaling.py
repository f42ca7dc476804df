"""Application Auto Scaling on the twin, as botocore sees it. Each test names the AWS behaviour it checks."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

RESOURCE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def test_target_tracking_creates_alarm_high_and_alarm_low_and_deletes_them_with_the_policy(twin):
    aas, cw = twin.client("application-autoscaling"), twin.client("cloudwatch")
    resource = f"endpoint/{twin.endpoint}/variant/AllTraffic"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=RESOURCE_DIMENSION,
                                 MinCapacity=1, MaxCapacity=1)
    put = aas.put_scaling_policy(
        PolicyName="tracking", ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=RESOURCE_DIMENSION,
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    try:
        names = sorted(a["AlarmName"] for a in put["Alarms"])
        assert len(names) == 2 and all(n.startswith(f"TargetTracking-{resource}-") for n in names), names
        kind = {n: ("AlarmHigh" if "-AlarmHigh-" in n else "AlarmLow" if "-AlarmLow-" in n else n) for n in names}
        alarms = {kind[a["AlarmName"]]: a for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]}
        assert set(alarms) == {"AlarmHigh", "AlarmLow"}, names
        high, low = alarms["AlarmHigh"], alarms["AlarmLow"]
        assert (high["MetricName"], high["Namespace"], high["Statistic"]) == ("InvocationsPerInstance", "AWS/SageMaker", "Sum")
        assert (high["ComparisonOperator"], high["Threshold"]) == ("GreaterThanThreshold", 100.0)
        assert (low["ComparisonOperator"], low["Threshold"]) == ("LessThanThreshold", 90.0)
        assert {d["Name"]: d["Value"] for d in high["Dimensions"]} == {"EndpointName": twin.endpoint,
                                                                       "VariantName": "AllTraffic"}
        described = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]
        assert sorted(a["AlarmName"] for a in described[0]["Alarms"]) == names
        activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)
        assert activities["ScalingActivities"] == [], "putting a policy is not a scaling activity"
    finally:
        aas.delete_scaling_policy(PolicyName="tracking", ServiceNamespace="sagemaker", ResourceId=resource,
                                  ScalableDimension=RESOURCE_DIMENSION)
        aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                       ScalableDimension=RESOURCE_DIMENSION)
    assert cw.describe_alarms(AlarmNames=names)["MetricAlarms"] == [], "the policy's alarms go with it"


def test_updating_a_policy_keeps_its_arn_and_replaces_its_alarms(twin):
    aas, cw = twin.client("application-autoscaling"), twin.client("cloudwatch")
    resource = f"endpoint/{twin.endpoint}/variant/AllTraffic"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=RESOURCE_DIMENSION,
                                 MinCapacity=1, MaxCapacity=1)
    config = {"TargetValue": 100.0,
              "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
    put = dict(PolicyName="tracking", ServiceNamespace="sagemaker", ResourceId=resource,
               ScalableDimension=RESOURCE_DIMENSION, PolicyType="TargetTrackingScaling")
    try:
        first = aas.put_scaling_policy(**put, TargetTrackingScalingPolicyConfiguration=config)
        second = aas.put_scaling_policy(**put, TargetTrackingScalingPolicyConfiguration={**config, "TargetValue": 50.0})
        assert second["PolicyARN"] == first["PolicyARN"], "an update is the same policy"
        old = [a["AlarmName"] for a in first["Alarms"]]
        assert cw.describe_alarms(AlarmNames=old)["MetricAlarms"] == [], "the old thresholds' alarms are gone"
        new = cw.describe_alarms(AlarmNames=[a["AlarmName"] for a in second["Alarms"]])["MetricAlarms"]
        assert sorted(a["Threshold"] for a in new) == [45.0, 50.0]
    finally:
        aas.delete_scaling_policy(PolicyName="tracking", ServiceNamespace="sagemaker", ResourceId=resource,
                                  ScalableDimension=RESOURCE_DIMENSION)
        aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                       ScalableDimension=RESOURCE_DIMENSION)


def test_a_real_time_variant_cannot_scale_to_zero(twin):
    aas = twin.client("application-autoscaling")
    with pytest.raises(ClientError) as caught:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=f"endpoint/{twin.endpoint}/variant/AllTraffic",
                                     ScalableDimension=RESOURCE_DIMENSION, MinCapacity=0, MaxCapacity=2)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "asynchronous" in caught.value.response["Error"]["Message"]
