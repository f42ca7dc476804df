"""An asynchronous endpoint that scales to zero and back, in the twin, end to end: `sme deploy` of an experiment
file with `autoscaling: {min: 0}` (target tracking on ApproximateBacklogSizePerInstance, and the step policy
and HasBacklogWithoutCapacity alarm that wake it), idle -> 0 instances, a backlog submitted with `sme loadtest`
while at zero, the wake-up, the drain, and back to 0; every request accounted for; `sme teardown` sweeps it all.

Time is bounded by the twin's test knobs (metrics every 1 s, scaling every 1 s over a 5 s window: the wake
alarm's two data points are two flushes) and by cooldowns of 1 s from the file. The load: 24 requests.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import run_sme
from tests.e2e.test_async_endpoint import IMAGE, RESULTS, keys, s3
from tests.e2e.test_local import clients, local_aws, local_env as env  # noqa: F401  (fixtures: the twin in process)

pytestmark = pytest.mark.timeout(300)
NAME = "churn-zero"
RESOURCE = f"endpoint/{NAME}/variant/AllTraffic"
WAKE = f"sme-{NAME}-AllTraffic-backlog-without-capacity"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    from sme.local.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("model"), payload_rows=4)


def experiment(tmp_path, demo_model, target: int) -> str:
    path = tmp_path / "sme.yaml"
    path.write_text(f"""
name: {NAME}
region: us-east-1
model: {{image: {IMAGE}, model_data: {demo_model.model_tar}, role: create}}
endpoint:
  variants: [{{instance_type: ml.m5.large, count: 1}}]
  async: {{output: s3://{RESULTS}/out/, failure: s3://{RESULTS}/failed/, max_concurrent_per_instance: 1}}
autoscaling: {{min: 0, max: 2, target: {target}, scale_in_cooldown: 1s, scale_out_cooldown: 1s}}
""")
    return str(path)


def deploy(path: str, env, tmp_path):
    result = run_sme("deploy", "-c", path, "--poll-interval", "0.2s", "--timeout", "90s", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result


def instances(client) -> int:
    return client("sagemaker").describe_endpoint(EndpointName=NAME)["ProductionVariants"][0]["CurrentInstanceCount"]


def wait_for_instances(client, count: int, within: float) -> None:
    deadline = time.time() + within
    while instances(client) != count:
        assert time.time() < deadline, f"the endpoint did not reach {count} instances in {within:.0f} s"
        time.sleep(0.5)


def submit_backlog(tmp_path, demo_model, env, run: str) -> dict:
    """24 requests in 2 s with `sme loadtest`; its account of them (the async book)."""
    payload = tmp_path / "rows.csv"
    payload.write_text(demo_model.payload_csv.read_text().strip() + "\n")
    config = tmp_path / "loadtest.yaml"
    config.write_text(f"""
target: {{endpoint: {NAME}, timeout: 120s}}
payload: {{file: {payload}, split: lines, content_type: text/csv}}
stages: [{{rate: 12, duration: 2s}}]
""")
    result = run_sme("loadtest", "-c", str(config), "--out", str(tmp_path / run), env=env, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    book = json.loads((tmp_path / run / "summary.json").read_text())["async"]
    assert book["submitted"] == 24 and book["succeeded"] == 24 and book["pending"] == 0 and book["failed"] == 0, book
    return book


def causes_since(aas, seen: int) -> list[str]:
    """The scaling activities' causes, oldest first, after the first ``seen``."""
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingActivities"]
    return [a["Cause"] for a in reversed(activities)][seen:]


def test_the_backlog_wakes_an_endpoint_at_zero_drains_and_it_returns_to_zero(local_aws, env, demo_model, tmp_path):
    client = clients(local_aws)
    s3(local_aws).create_bucket(Bucket=RESULTS)
    path = experiment(tmp_path, demo_model, target=50)
    deploy(path, env, tmp_path)

    # what AWS now has, as the AWS page writes it
    aas, cw = client("application-autoscaling"), client("cloudwatch")
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[RESOURCE])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 2)
    policies = {p["PolicyType"]: p for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker",
                                                                         ResourceId=RESOURCE)["ScalingPolicies"]}
    tracking = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 50.0
    assert tracking["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    [alarm] = cw.describe_alarms(AlarmNames=[WAKE])["MetricAlarms"]
    assert alarm["AlarmActions"] == [policies["StepScaling"]["PolicyARN"]], "the alarm acts on the wake-up policy"

    # idle: the backlog policy takes the one instance away
    wait_for_instances(client, 0, within=60)
    assert "no changes" in deploy(path, env, tmp_path).stderr, "a redeploy of the same file plans nothing"
    seen = len(causes_since(aas, 0))

    # 24 waiting is under the target of 50: only the wake-up policy brings an instance, which drains them
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    submit_backlog(tmp_path, demo_model, env, "run1")
    assert len(keys(s3(local_aws), "out/")) == 24, "every request's output object was written"
    waited = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="HasBacklogWithoutCapacity",
                                      Dimensions=[{"Name": "EndpointName", "Value": NAME}], StartTime=started,
                                      EndTime=datetime.now(timezone.utc) + timedelta(seconds=60), Period=60,
                                      Statistics=["Maximum"])["Datapoints"]
    assert max(p["Maximum"] for p in waited) == 1.0, "requests waited with no instance"
    wait_for_instances(client, 0, within=60)
    causes = causes_since(aas, seen)
    assert f"monitor alarm {WAKE} in state ALARM" in causes[0] and "from 0 to 1" in causes[0], causes
    assert "from 1 to 0" in causes[-1] and "ApproximateBacklogSizePerInstance = 0.0" in causes[-1], causes
    seen += len(causes)

    # a lower target updates the tracking policy in place; now the backlog itself scales out from zero
    result = deploy(experiment(tmp_path, demo_model, target=2), env, tmp_path)
    assert "1 to update" in result.stderr and f"update  scaling-policy sme-{NAME}-AllTraffic-tracking" in \
        result.stderr, result.stderr
    after = {p["PolicyType"]: p for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker",
                                                                      ResourceId=RESOURCE)["ScalingPolicies"]}
    assert after["TargetTrackingScaling"]["PolicyARN"] == policies["TargetTrackingScaling"]["PolicyARN"]
    assert after["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 2.0
    submit_backlog(tmp_path, demo_model, env, "run2")
    assert len(keys(s3(local_aws), "out/")) == 48
    wait_for_instances(client, 0, within=60)
    causes = causes_since(aas, seen)
    assert "ApproximateBacklogSizePerInstance" in causes[0] and "from 0 to 2" in causes[0], causes
    assert "from 1 to 0" in causes[-1], causes

    # teardown sweeps the target, both policies and the alarm
    result = run_sme("teardown", "--name", NAME, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[RESOURCE])["ScalableTargets"] == []
    assert cw.describe_alarms(AlarmNames=[WAKE])["MetricAlarms"] == []
    assert "async results under" in result.stderr + result.stdout, "the results are the user's, and said so"
