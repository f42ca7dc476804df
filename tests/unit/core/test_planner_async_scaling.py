"""Autoscaling an asynchronous endpoint on its backlog, down to zero and back: what the experiment file resolves
to (as AWS's "Autoscale an asynchronous endpoint" page writes it), and what the pure planner makes of it.

What AWS answers is written here as DescribeScalingPolicies / DescribeAlarms entries and read through the same
functions the observer uses, so a redeploy's "nothing to do" is checked against AWS's own shapes.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sme.config import Experiment
from sme.core.models import Observed, ScalingView
from sme.core.observe import alarm_definition, canonical_policy, canonical_step_policy
from sme.core.planner import plan_deploy
from sme.core.resolve import resolve
from sme.endpoint_kinds import AsyncInference
from sme.errors import ConfigError
from tests.unit.core.test_planner import experiment, live

RID = "endpoint/churn/variant/AllTraffic"
WAKE = "sme-churn-AllTraffic-backlog-without-capacity"
ARN = f"arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:1234:resource/sagemaker/{RID}:policyName/{WAKE}"


def async_desired(**autoscaling):
    exp: Experiment = experiment(count=1, autoscaling={"max": 4, **autoscaling},
                                 async_inference=AsyncInference("s3://results/out/"))
    return resolve(exp, "us-east-1", "123456789012")


def ops(p):
    return [s.op for s in p.steps]


def as_aws_has_it(d, target_value=None, wake_arn=ARN, min_capacity=None):
    """What DescribeScalableTargets/-ScalingPolicies and DescribeAlarms answer after sme deployed ``d``."""
    [spec] = d.scaling
    tracking = json.loads(spec.policy)
    if target_value is not None:
        tracking["TargetValue"] = target_value
    policies = [(spec.policy_name, canonical_policy(tracking))]
    arns = [(spec.policy_name, "arn:tracking")]
    alarms = ()
    if spec.wake:
        # AWS answers the bound as written (an integer 0) and the alarm with the fields sme sent
        step = {"AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}
        policies.append((WAKE, canonical_step_policy(step)))
        arns.append((WAKE, ARN))
        a = spec.wake.alarm
        alarms = ((a.name, alarm_definition({
            "AlarmName": a.name, "MetricName": "HasBacklogWithoutCapacity", "Namespace": "AWS/SageMaker",
            "Statistic": "Average", "Dimensions": [{"Name": "EndpointName", "Value": "churn"}], "Period": 60,
            "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
            "AlarmActions": [wake_arn]})),)
    low = spec.min if min_capacity is None else min_capacity
    return replace(live(d), scaling=(ScalingView(RID, low, spec.max, tuple(policies), tuple(arns)),),
                   wake_alarms=alarms)


def test_an_async_endpoint_tracks_its_backlog_per_instance_with_the_target_from_the_file():
    [spec] = async_desired(min=0, target=3).scaling
    assert spec.policy_config == {
        "TargetValue": 3.0, "ScaleInCooldown": 300, "ScaleOutCooldown": 60, "DisableScaleIn": False,
        "CustomizedMetricSpecification": {"MetricName": "ApproximateBacklogSizePerInstance",
                                          "Namespace": "AWS/SageMaker", "Statistic": "Average",
                                          "Dimensions": [{"Name": "EndpointName", "Value": "churn"}]}}
    assert async_desired(min=1).scaling[0].policy_config["TargetValue"] == 5.0, "AWS's example target by default"


def test_min_zero_adds_the_wake_up_policy_and_alarm_as_aws_documents_them():
    [spec] = async_desired(min=0).scaling
    assert spec.min == 0 and spec.wake is not None
    assert spec.wake.policy_config == {
        "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}
    a = spec.wake.alarm
    assert (a.metric, a.namespace, a.statistic, a.dimensions) == (
        "HasBacklogWithoutCapacity", "AWS/SageMaker", "Average", (("EndpointName", "churn"),))
    assert (a.period, a.evaluation_periods, a.datapoints_to_alarm, a.threshold, a.comparison, a.treat_missing_data) \
        == (60, 2, 2, 1.0, "GreaterThanOrEqualToThreshold", "missing")
    assert async_desired(min=1).scaling[0].wake is None, "an endpoint that keeps an instance needs no wake-up"


def test_a_new_endpoint_gets_target_then_tracking_then_the_wake_up_once_in_service():
    p = plan_deploy(async_desired(min=0), Observed())
    assert ops(p)[-5:] == ["create_endpoint", "wait_endpoint", "register_scaling", "put_scaling_policy",
                           "put_wake_policy"]
    wake = p.steps[-1]
    assert (wake.name, wake.action, wake.why) == (
        WAKE, "create", f"new: +1 instance when requests wait with none (alarm {WAKE})")


def test_a_redeploy_of_the_same_file_plans_nothing():
    d = async_desired(min=0, target=3)
    assert plan_deploy(d, as_aws_has_it(d)).empty


def test_a_changed_target_value_updates_the_tracking_policy_in_place_and_nothing_else():
    d = async_desired(min=0, target=3)
    p = plan_deploy(d, as_aws_has_it(d, target_value=5.0))
    assert ops(p) == ["put_scaling_policy"] and p.steps[0].why == "policy changed"


def test_an_alarm_that_acts_on_an_older_policy_is_put_again_with_it():
    d = async_desired(min=0)
    p = plan_deploy(d, as_aws_has_it(d, wake_arn="arn:of-a-deleted-policy"))
    assert ops(p) == ["put_wake_policy"] and p.steps[0].action == "update"
    assert p.steps[0].why == f"changed: +1 instance when requests wait with none (alarm {WAKE})"


def test_a_wake_up_policy_whose_alarm_is_gone_is_put_again_with_a_new_alarm():
    d = async_desired(min=0)
    observed = replace(as_aws_has_it(d), wake_alarms=())
    p = plan_deploy(d, observed)
    assert ops(p) == ["put_wake_policy"] and (p.steps[0].name, p.steps[0].action) == (WAKE, "create")


def test_a_wake_up_policy_changed_by_hand_is_put_back_though_its_alarm_is_right():
    d = async_desired(min=0)
    observed = as_aws_has_it(d)
    [view] = observed.scaling
    changed = canonical_step_policy({"AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average",
                                     "Cooldown": 60, "StepAdjustments": [{"MetricIntervalLowerBound": 0,
                                                                          "ScalingAdjustment": 1}]})
    policies = tuple((n, changed if n == WAKE else p) for n, p in view.policies)
    p = plan_deploy(d, replace(observed, scaling=(replace(view, policies=policies),)))
    assert ops(p) == ["put_wake_policy"] and p.steps[0].action == "update"


def test_min_raised_from_zero_removes_the_wake_up_policy_and_its_alarm():
    before = async_desired(min=0)
    observed = as_aws_has_it(before)
    p = plan_deploy(async_desired(min=1), observed)
    assert ops(p) == ["register_scaling", "delete", "delete"]
    assert [(s.kind, s.name, s.why) for s in p.steps[1:]] == [
        ("scaling-policy", WAKE, "autoscaling.min is no longer 0"), ("alarm", WAKE, "the endpoint no longer scales to zero")]
    assert dict(p.steps[1].extra) == {"resource_id": RID}


def test_removing_autoscaling_removes_the_target_and_the_wake_up_alarm():
    observed = as_aws_has_it(async_desired(min=0))
    d = resolve(experiment(count=1, async_inference=AsyncInference("s3://results/out/")), "us-east-1",
                "123456789012")
    assert [(s.op, s.name) for s in plan_deploy(d, observed).steps] == [("deregister_scaling", RID),
                                                                        ("delete", WAKE)]


@pytest.mark.parametrize("autoscaling, field", [({"max": 2, "min": 0}, "autoscaling.min"),
                                                ({"max": 2, "metric": "backlog"}, "autoscaling.metric")])
def test_a_real_time_endpoint_refuses_scale_to_zero_and_the_backlog_metric(tmp_path, autoscaling, field):
    from sme.config import Overrides, load_experiment

    path = tmp_path / "sme.yaml"
    path.write_text(json.dumps({"name": "churn", "model": {"image": "xgboost:1.7-1", "model_data": "s3://models/m.tar.gz",
                                                           "role": "create"},
                                "endpoint": {"variants": [{"instance_type": "ml.m5.large"}]},
                                "autoscaling": autoscaling}))
    with pytest.raises(ConfigError) as caught:
        load_experiment(str(path), Overrides())
    assert caught.value.field == field and "asynchronous" in str(caught.value)
    data = json.loads(path.read_text())
    data["endpoint"]["async"] = {"output": "s3://results/out/"}
    path.write_text(json.dumps(data))
    assert load_experiment(str(path), Overrides()).autoscaling == autoscaling, "an async endpoint takes it"


def test_an_update_of_an_endpoint_that_scales_to_zero_puts_the_wake_up_back_after_registering():
    before = async_desired(min=0)
    observed = replace(as_aws_has_it(before), endpoint=replace(live(before).endpoint, config_name="churn-config-old"))
    assert ops(plan_deploy(before, observed)) == [
        "deregister_scaling", "update_endpoint", "wait_endpoint", "register_scaling", "put_scaling_policy",
        "put_wake_policy"], "a re-made policy has a new ARN: its alarm is put again to act on it"


def test_the_wake_up_step_sends_the_policy_then_the_alarm_on_its_arn(tmp_path, monkeypatch):
    """botocore's Stubber checks every parameter against the service model, and the values against AWS's page."""
    import boto3
    from botocore.stub import Stubber

    from sme.console import Env
    from sme.core.executor import ExecContext, Executor
    from sme.core.resources import HANDLERS
    from sme.core.steps import Plan
    from sme.state import DeployState, load_state
    from tests.unit.core.test_executor import FakeAws

    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path))
    d = async_desired(min=0)
    [step] = [s for s in plan_deploy(d, Observed()).steps if s.op == "put_wake_policy"]
    aas = boto3.client("application-autoscaling", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    tags = [{"Key": "sme:experiment", "Value": "churn"}]
    with Stubber(aas) as aas_stub, Stubber(cw) as cw_stub:
        aas_stub.add_response("put_scaling_policy", {"PolicyARN": ARN}, {
            "PolicyName": WAKE, "ServiceNamespace": "sagemaker", "ResourceId": RID,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}})
        cw_stub.add_response("put_metric_alarm", {}, {
            "AlarmName": WAKE, "AlarmDescription": d.scaling[0].wake.alarm.description,
            "MetricName": "HasBacklogWithoutCapacity", "Namespace": "AWS/SageMaker", "Statistic": "Average",
            "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "missing",
            "Dimensions": [{"Name": "EndpointName", "Value": "churn"}], "AlarmActions": [ARN], "Tags": tags})
        cw_stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": WAKE, "AlarmArn": "arn:alarm"}]},
                             {"AlarmNames": [WAKE]})
        ctx = ExecContext(aws=FakeAws({"application-autoscaling": aas, "cloudwatch": cw}),
                          state=DeployState("churn"), env=Env(), desired=replace(d, tags=(("sme:experiment", "churn"),)))
        Executor(ctx, HANDLERS).execute(Plan((step,)))
    assert [(r.kind, r.name) for r in load_state("churn").resources] == [("scaling-policy", WAKE), ("alarm", WAKE)]
