"""Application Auto Scaling on the twin, as botocore sees it. Each test names the AWS behaviour it checks."""

from __future__ import annotations

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
