"""The real `sme watch` as a subprocess against the moto server: metrics, subnets, schedule, faults."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import ACCOUNT

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SAMPLE_CALLS = ("DescribeEndpoint", "GetMetricData", "DescribeSubnets", "DescribeNetworkInterfaces")


def make_endpoint(boto, vpc, name="churn", variants=("AllTraffic",), count=2, subnets=None):
    """An InService endpoint whose model sits in the VPC's subnets (made directly: quicker than a deploy)."""
    sm = boto("sagemaker")
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"},
                    VpcConfig={"Subnets": subnets or vpc["subnets"], "SecurityGroupIds": [vpc["security_group"]]})
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[
        {"VariantName": v, "ModelName": f"{name}-model", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": count} for v in variants])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def put_metric(boto, name, variant, value, *, namespace="AWS/SageMaker", metric="Invocations", when=None):
    boto("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[{
        # a little in the past: moto drops the window's sub-second part, as CloudWatch publishes late
        "MetricName": metric, "Value": value, "Timestamp": when or datetime.now(timezone.utc) - timedelta(seconds=5),
        "Dimensions": [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]}])


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def sample_calls(moto):
    return [c for c in list(moto.recorder.calls) if c.operation in SAMPLE_CALLS + ("DescribeScalingActivities",)]


def test_once_json_reads_metrics_with_their_statistic(sme, boto, vpc, moto):
    make_endpoint(boto, vpc)
    for value in (10.0, 20.0, 30.0):  # Invocations: Sum -> 60
        put_metric(boto, "churn", "AllTraffic", value)
    for value in (1000.0, 3000.0):  # ModelLatency: Average -> 2000
        put_metric(boto, "churn", "AllTraffic", value, metric="ModelLatency")
    for value in (40.0, 80.0):  # CPUUtilization in the instance namespace: Average -> 60
        put_metric(boto, "churn", "AllTraffic", value, namespace="/aws/sagemaker/Endpoints", metric="CPUUtilization")
    put_metric(boto, "churn", "AllTraffic", 7.0, metric="ModelSetupTime")  # Maximum
    put_metric(boto, "churn", "AllTraffic", 9.0, metric="ModelSetupTime")
    result = sme("watch", "--endpoint", "churn", "--once", "--json", "--interval", "5m")
    assert result.returncode == 0, result.stderr
    [sample] = [json.loads(line) for line in result.stdout.splitlines()]
    got = sample["metrics"]["AllTraffic"]
    assert got["Invocations"] == 60.0, got
    assert got["ModelLatency"] == 2000.0, got
    assert got["CPUUtilization"] == 60.0, got
    assert got["ModelSetupTime"] == 9.0, got
    assert got["Invocation5XXErrors"] is None, "a series without data should be null"
    assert sample["status"] == "InService" and sample["missed"] is False
    assert sample["variants"] == [{"name": "AllTraffic", "current_instances": 2, "desired_instances": 2,
                                   "instance_type": "ml.m5.large"}], "the instance type comes from the endpoint config"
    assert sorted(s["id"] for s in sample["subnets"]) == sorted(vpc["subnets"]), "subnets come from the model"
    assert sample["headroom"]["total"] == sum(s["free_ips"] for s in sample["subnets"])
    assert sample["errors"] == []


def test_duration_writes_one_line_per_slot_on_schedule(sme, boto, vpc, tmp_path):
    make_endpoint(boto, vpc)
    out = tmp_path / "runs" / "watch.jsonl"
    result = sme("watch", "--endpoint", "churn", "--interval", "1s", "--duration", "3s", "--out", str(out),
                 "--to-csv", str(tmp_path / "watch.csv"))
    assert result.returncode == 0, result.stderr
    samples = lines(out)
    assert [s["slot"] for s in samples] == [0, 1, 2, 3], "3s at 1s: slots 0..3"
    start = samples[0]["due"]
    for s in samples:
        assert s["due"] == pytest.approx(start + s["slot"], abs=1e-6), "slot k is due at start + k*interval"
        # a slot starts inside its own interval, or is marked missed (how late a busy machine makes it is
        # not this test's business: the no-drift schedule is tested on a fake clock in the unit tests)
        assert s["missed"] or s["due"] <= s["time"] < s["due"] + 1.0, f"slot {s['slot']} ran outside its interval: {s}"
    header = (tmp_path / "watch.csv").read_text().splitlines()[0].split(",")
    assert "AllTraffic.Invocations" in header and f"{vpc['subnets'][0]}.free_ips" in header, header
    assert len((tmp_path / "watch.csv").read_text().splitlines()) == 5


def start_watch(aws_env, tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "sme", "watch", *args], env=aws_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lines(path, n, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines in {timeout}s")


def test_network_interfaces_created_between_samples_lower_free_ips_and_headroom(boto, vpc, aws_env, tmp_path):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    proc = start_watch(aws_env, tmp_path, "--endpoint", "churn", "--interval", "1s", "--duration", "3s",
                       "--out", str(out), "--metric", "Invocations")
    wait_for_lines(out, 1)
    ec2, subnet = boto("ec2"), vpc["subnets"][0]
    for i in range(3):
        ec2.create_network_interface(SubnetId=subnet, Description=f"SageMaker endpoint churn instance {i}")
    ec2.create_network_interface(SubnetId=subnet, Description="a lambda function's interface")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    samples = lines(out)
    first, last = samples[0], samples[-1]
    row = {s["id"]: s for s in first["subnets"]}[subnet]
    later = {s["id"]: s for s in last["subnets"]}[subnet]
    assert later["free_ips"] == row["free_ips"] - 4, "every interface takes an address, SageMaker's or not"
    assert (row["sagemaker_enis"], later["sagemaker_enis"]) == (0, 3), "only SageMaker's interfaces are counted"
    assert last["headroom"]["total"] == first["headroom"]["total"] - 4
    az = row["az"]
    assert last["headroom"]["per_az"][az] == first["headroom"]["per_az"][az] - 4
    assert last["headroom"]["blue_green_spare"] == last["headroom"]["total"] - 2


def test_sigkill_then_resume_leaves_every_slot_once(boto, vpc, aws_env, tmp_path, sme):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    args = ("--endpoint", "churn", "--interval", "1s", "--duration", "6s", "--out", str(out),
            "--metric", "Invocations")
    proc = start_watch(aws_env, tmp_path, *args)
    wait_for_lines(out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    start = lines(out)[0]["due"]  # slot 0's due time, on the file's own clock
    with out.open("a") as fh:  # as if the kill had landed mid-write
        fh.write('{"slot": 9, "due": 1')
    time.sleep(max(0.0, start + 3.2 - time.time()))  # slot 2's whole interval passes while nobody watches
    result = sme("watch", *args, "--resume")
    assert result.returncode == 0, result.stderr
    samples = lines(out)  # every line parses: the torn tail was cut
    assert [s["slot"] for s in samples] == list(range(7)), [s["slot"] for s in samples]
    assert any(s["missed"] for s in samples), "the slots while the watcher was dead are recorded as missed"
    assert all("metrics" in s for s in samples if not s["missed"])
    again = sme("watch", *args, "--resume")
    assert again.returncode == 0 and "already recorded" in again.stderr
    assert len(lines(out)) == 7


def test_a_server_failing_one_call_in_five_loses_no_sample(boto, vpc, moto, sme, tmp_path):
    make_endpoint(boto, vpc)
    seen, failed = Counter(), Counter()

    def every_fifth(call):
        """One call in five of each operation fails, alternately throttled and unavailable."""
        seen[call.operation] += 1
        if seen[call.operation] % 5 == 2:
            failed[call.operation] += 1
            return (400, "ThrottlingException", "injected: rate exceeded") if sum(failed.values()) % 2 else \
                (503, "ServiceUnavailable", "injected: try again")
        return None

    moto.recorder.fault = every_fifth
    out = tmp_path / "watch.jsonl"
    # 2 s slots: a sample's four calls, any of them retried after up to 0.1 s, fit in one with room for a busy
    # machine (under a CPU hog, 1 s slots lost one)
    result = sme("watch", "--endpoint", "churn", "--interval", "2s", "--duration", "8s", "--out", str(out))
    moto.recorder.fault = None
    assert result.returncode == 0, result.stderr
    samples = lines(out)
    assert [s["slot"] for s in samples] == [0, 1, 2, 3, 4]
    timing = [(s["slot"], round(s["time"] - s["due"], 3), s.get("took_s")) for s in samples]
    assert [s for s in samples if s["missed"] or s["errors"]] == [], f"a retried fault must not cost a sample: {timing}"
    assert set(failed) >= set(SAMPLE_CALLS), f"every kind of sample call should have failed once: {failed}"


def test_calls_per_sample_do_not_grow_with_the_metric_count(boto, vpc, moto, sme, tmp_path):
    make_endpoint(boto, vpc, variants=("A", "B"))
    boto("application-autoscaling").register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/churn/variant/A",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=4)
    per_sample = {}
    for label, metric_args in (("one", ("--metric", "Invocations")),
                               ("many", ("--metric", "Invocations,ModelLatency:Maximum,CPUUtilization",
                                         "--metric", "MemoryUtilization,DiskUtilization,ModelLatency:Sum"))):
        moto.recorder.calls.clear()
        result = sme("watch", "--endpoint", "churn", "--interval", "1s", "--duration", "2s",
                     "--out", str(tmp_path / f"{label}.jsonl"), *metric_args)
        assert result.returncode == 0, result.stderr
        assert len(lines(tmp_path / f"{label}.jsonl")) == 3
        ops = Counter(c.operation for c in sample_calls(moto))
        # resolving the target adds one DescribeEndpoint and one DescribeSubnets before slot 0
        per_sample[label] = {op: (n - (1 if op in ("DescribeEndpoint", "DescribeSubnets") else 0)) / 3
                             for op, n in ops.items()}
    expected = {"DescribeEndpoint": 1, "GetMetricData": 1, "DescribeSubnets": 1, "DescribeNetworkInterfaces": 1,
                "DescribeScalingActivities": 1}
    assert per_sample["one"] == expected, per_sample
    assert per_sample["many"] == expected, per_sample


def test_scaling_activities_become_events_once(boto, vpc, moto, aws_env, tmp_path):
    from sme.local.aws.patches.autoscaling import add_activity

    make_endpoint(boto, vpc)
    boto("application-autoscaling").register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/churn/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=4)
    add_activity("endpoint/other/variant/AllTraffic", "someone else's endpoint")
    out = tmp_path / "watch.jsonl"
    proc = start_watch(aws_env, tmp_path, "--endpoint", "churn", "--interval", "1s", "--duration", "3s",
                       "--out", str(out), "--metric", "Invocations")
    wait_for_lines(out, 1)
    add_activity("endpoint/churn/variant/AllTraffic", "Setting desired instance count to 3.")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = [e for s in lines(out) for e in s["events"] if e["kind"] == "scaling"]
    assert [(e["variant"], e["message"]) for e in events] == [("AllTraffic", "Setting desired instance count to 3.")]


def test_expired_credentials_stop_with_a_clear_message_and_a_valid_file(boto, vpc, moto, aws_env, tmp_path):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    proc = start_watch(aws_env, tmp_path, "--endpoint", "churn", "--interval", "1s", "--duration", "10s",
                       "--out", str(out), "--metric", "Invocations")
    wait_for_lines(out, 1)
    moto.recorder.fault = lambda call: (400, "ExpiredTokenException", "The security token included in the request is expired")
    _, err = proc.communicate(timeout=30)
    moto.recorder.fault = None
    assert proc.returncode == 1, err
    assert "credentials expired" in err and "--resume" in err, err
    assert "Traceback" not in err
    samples = lines(out)
    assert samples[-1]["errors"] and samples[-1]["errors"][0]["code"] == "ExpiredTokenException"


@pytest.mark.parametrize("args, words", [
    (("--endpoint", "nope", "--once"), ("endpoint 'nope' does not exist",)),
    (("--endpoint", "churn", "--subnet", "subnet-0123456789abcdef0", "--once"), ("unknown subnet",)),
    (("--endpoint", "churn", "--interval", "500ms"), ("--interval", "1s to 1d")),
    (("--endpoint", "churn", "--interval", "2d"), ("--interval", "1s to 1d")),
    (("--endpoint", "churn", "--interval", "10s", "--duration", "5s"), ("shorter than the interval",)),
])
def test_bad_input_is_one_clear_error_before_any_sample(boto, vpc, sme, tmp_path, args, words):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    result = sme("watch", *args, "--out", str(out))
    assert result.returncode == 2, (result.returncode, result.stderr)
    for word in words:
        assert word in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists(), "no sample may be written after bad input"


def test_ctrl_c_ends_an_open_ended_watch_cleanly(boto, vpc, aws_env, tmp_path):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    proc = start_watch(aws_env, tmp_path, "--endpoint", "churn", "--interval", "1s", "--out", str(out),
                       "--metric", "Invocations")
    wait_for_lines(out, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "--resume" in err and "Traceback" not in err
    slots = [s["slot"] for s in lines(out)]
    assert slots == list(range(len(slots))) and len(slots) >= 2


def test_experiment_file_names_the_endpoint(boto, vpc, sme, tmp_path):
    make_endpoint(boto, vpc)
    (tmp_path / "sme.yaml").write_text("name: churn\nregion: us-east-1\n")
    result = sme("watch", "-c", "sme.yaml", "--once", "--json", "--metric", "Invocations")
    assert result.returncode == 0, result.stderr
    sample = json.loads(result.stdout)
    assert sample["endpoint"] == "churn" and list(sample["metrics"]["AllTraffic"]) == ["Invocations"]


def test_two_watches_on_one_file_one_writes_the_other_refuses(boto, vpc, aws_env, tmp_path, sme):
    make_endpoint(boto, vpc)
    out = tmp_path / "watch.jsonl"
    args = ("--endpoint", "churn", "--interval", "1s", "--duration", "4s", "--out", str(out),
            "--metric", "Invocations")
    first = start_watch(aws_env, tmp_path, *args)
    wait_for_lines(out, 1)
    second = sme("watch", *args, "--resume")
    assert second.returncode == 2 and "is being written by another sme watch" in second.stderr, second.stderr
    first.communicate(timeout=30)
    slots = [s["slot"] for s in lines(out)]
    assert slots == sorted(set(slots)) == list(range(5)), slots
    again = sme("watch", *args, "--resume")  # the first has ended: its lock went with it
    assert again.returncode == 0 and "already recorded" in again.stderr, again.stderr
