"""Local mode end to end: the real CLI deploys into the local AWS, whose endpoint is a real runtime."""

from __future__ import annotations

import io
import json
import os
import time

import pytest

from tests.conftest import run_sme


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory):
    from sme.local.aws.twin import LocalAws

    local = LocalAws(workdir=tmp_path_factory.mktemp("local"), metrics_period=1.0, scaling_period=1.0,
                     scaling_window=5.0).start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    from sme.local.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("model"), payload_rows=50)


@pytest.fixture
def local_env(local_aws, tmp_path):
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{local_aws.url}/moto-api/reset", method="POST")).read()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local_aws.environment())
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.environ["AWS_CONFIG_FILE"]
    env["SME_STATE_DIR"] = str(tmp_path / ".sme")
    return env


def clients(local_aws):
    import boto3

    def client(name):
        return boto3.client(name, endpoint_url=local_aws.url, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    return client


def make_vpc(ec2, prefix=28):
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    sg = ec2.create_security_group(GroupName="local", Description="local", VpcId=vpc)["GroupId"]
    return sg, [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/{prefix}", AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
            for i, az in enumerate("abc")]


def free_ips(ec2, subnets):
    return sum(s["AvailableIpAddressCount"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"])


def xgboost_predictions(model_tar, rows: list[str]) -> list[float]:
    """What xgboost itself predicts for these CSV rows with the model in this tarball (the oracle)."""
    import tarfile

    import numpy as np
    import xgboost as xgb

    with tarfile.open(model_tar) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    return booster.predict(xgb.DMatrix(np.array([[float(v) for v in r.split(",")] for r in rows]))).tolist()


def test_deploy_invoke_scale_and_teardown(local_aws, local_env, demo_model, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("SME_TEST_SHELL_SECRET", "must-not-reach-a-model")  # the shell the twin was started from
    client = clients(local_aws)
    ec2 = client("ec2")
    sg, subnets = make_vpc(ec2)
    before = free_ips(ec2, subnets)
    args = ["deploy", "--name", "local1", "--image", "xgboost:1.7-1", "--model-data", str(demo_model.model_tar),
            "--instance-type", "ml.m5.large", "--count", "2", "--role", "create",
            "--poll-interval", "0.2s", "--timeout", "90s", "--security-group", sg]
    for s in subnets:
        args += ["--subnet", s]
    result = run_sme(*args, env=local_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert free_ips(ec2, subnets) == before - 2, "each instance takes one address"
    azs = {e["AvailabilityZone"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}
    assert len(azs) == 2, f"two instances should sit in two AZs, got {azs}"

    rows = demo_model.payload_csv.read_text().splitlines()[:5]
    runtime = client("sagemaker-runtime")
    reply = runtime.invoke_endpoint(EndpointName="local1", ContentType="text/csv", Body="\n".join(rows))
    assert reply["ContentType"] == "text/csv; charset=utf-8"
    got = [float(x) for x in reply["Body"].read().decode().splitlines()]  # one prediction per line
    want = xgboost_predictions(demo_model.model_tar, rows)
    assert np.allclose(got, want, rtol=1e-6), (got, want)

    # load: metrics reach CloudWatch and a target-tracking policy scales the variant out
    aas = client("application-autoscaling")
    resource = "endpoint/local1/variant/AllTraffic"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, MinCapacity=2, MaxCapacity=3,
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    aas.put_scaling_policy(PolicyName="p", ServiceNamespace="sagemaker", ResourceId=resource,
                           ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
                           TargetTrackingScalingPolicyConfiguration={
                               "TargetValue": 60.0, "ScaleOutCooldown": 1, "ScaleInCooldown": 600,
                               "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    # (the third instance is a real model process: on a busy 2-core machine it can take well over 30 s to
    # start and be measured; the loop ends as soon as it serves)
    deadline = time.time() + 120
    while time.time() < deadline:
        for _ in range(20):
            runtime.invoke_endpoint(EndpointName="local1", ContentType="text/csv", Body=rows[0])
        variant = client("sagemaker").describe_endpoint(EndpointName="local1")["ProductionVariants"][0]
        if variant["CurrentInstanceCount"] == 3:
            break
        time.sleep(0.5)
    assert variant["CurrentInstanceCount"] == 3, variant
    assert free_ips(ec2, subnets) == before - 3
    cw = client("cloudwatch")
    end = time.time() + 5
    data = cw.get_metric_data(StartTime=end - 120, EndTime=end, MetricDataQueries=[
        {"Id": f"m{i}", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": name, "Dimensions": [
            {"Name": "EndpointName", "Value": "local1"}, {"Name": "VariantName", "Value": "AllTraffic"}]},
            "Period": 60, "Stat": stat}}
        for i, (ns, name, stat) in enumerate([("AWS/SageMaker", "Invocations", "Sum"),
                                              ("AWS/SageMaker", "ModelLatency", "Average"),
                                              ("/aws/sagemaker/Endpoints", "CPUUtilization", "Average")])])
    values = {r["Id"]: sum(r["Values"]) for r in data["MetricDataResults"]}
    assert values["m0"] >= 20, values
    assert values["m1"] > 0 and values["m2"] > 0, f"ModelLatency and CPU of the runtimes under load: {values}"

    pids = [i.proc.pid for ep in local_aws.endpoints.live_endpoints() for i in ep.live.all()]
    assert len(pids) == 3
    for pid in pids:  # a model's process holds none of the shell's variables, AWS credentials included
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert not [v for v in environ if v.startswith((b"SME_TEST_SHELL_SECRET=", b"AWS_SESSION_TOKEN="))]
        assert b"AWS_SECRET_ACCESS_KEY=testing" not in environ
    down = run_sme("teardown", "--name", "local1", env=local_env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert free_ips(ec2, subnets) == before, "teardown must free every address"
    for pid in pids:
        assert not _alive(pid), f"runtime {pid} still running after teardown"


def test_broken_artifact_fails_with_reason(local_aws, local_env, tmp_path):
    import tarfile

    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        payload = b"this is not a model"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    result = run_sme("deploy", "--name", "broken", "--image", "xgboost:1.7-1", "--model-data", str(bad),
                     "--instance-type", "ml.m5.large", "--role", "create",
                     "--poll-interval", "0.2s", "--timeout", "60s", env=local_env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert "Failed" in result.stderr and "model" in result.stderr.lower()
    assert run_sme("teardown", "--name", "broken", env=local_env, cwd=tmp_path).returncode == 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_local_start_prints_environment_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    ready = tmp_path / "env.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([sys.executable, "-m", "sme", "local", "start", "--port", "0", "--ready-file", str(ready),
                             "--workdir", str(tmp_path / "w")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.1)
        exports = dict(line[len("export "):].split("=", 1) for line in ready.read_text().splitlines())
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        child = dict(env, **exports, SME_STATE_DIR=str(tmp_path / ".sme"),
                     AWS_CONFIG_FILE=os.environ["AWS_CONFIG_FILE"],
                     AWS_SHARED_CREDENTIALS_FILE=os.environ["AWS_SHARED_CREDENTIALS_FILE"])
        status = run_sme("status", "--name", "nothing", "--json", env=child, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "NotDeployed"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "export AWS_ENDPOINT_URL=" in out


def test_update_brings_up_a_new_fleet_and_retires_the_old(local_aws, local_env, demo_model, tmp_path):
    client = clients(local_aws)
    sg, subnets = make_vpc(client("ec2"))
    base = ["deploy", "--name", "upd", "--image", "xgboost:1.7-1", "--model-data", str(demo_model.model_tar),
            "--instance-type", "ml.m5.large", "--role", "create", "--poll-interval", "0.2s", "--timeout", "90s",
            "--security-group", sg, "--subnet", subnets[0], "--subnet", subnets[1]]
    assert run_sme(*base, env=local_env, cwd=tmp_path).returncode == 0
    [old] = [i.proc.pid for ep in local_aws.endpoints.live_endpoints() if ep.name == "upd" for i in ep.live.all()]
    updated = run_sme(*base, "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1", env=local_env, cwd=tmp_path)
    assert updated.returncode == 0, updated.stderr
    assert "update  endpoint upd" in updated.stderr, updated.stderr
    [new] = [i.proc.pid for ep in local_aws.endpoints.live_endpoints() if ep.name == "upd" for i in ep.live.all()]
    assert new != old and not _alive(old), "the old fleet must be stopped once the new one serves"
    row = demo_model.payload_csv.read_text().splitlines()[0]
    reply = client("sagemaker-runtime").invoke_endpoint(EndpointName="upd", ContentType="text/csv", Body=row)
    got, [want] = float(reply["Body"].read()), xgboost_predictions(demo_model.model_tar, [row])
    assert got == pytest.approx(float(want), rel=1e-6), "the new fleet serves the model: xgboost's own prediction"
    assert len(client("ec2").describe_network_interfaces()["NetworkInterfaces"]) == 1, "the old address is freed"
    assert run_sme("teardown", "--name", "upd", env=local_env, cwd=tmp_path).returncode == 0
    assert not _alive(new)


@pytest.mark.parametrize("method, headers", [
    ("OPTIONS", {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}),
    ("POST", {"Origin": "https://evil.example", "Content-Type": "application/x-amz-json-1.1",
              "X-Amz-Target": "SageMaker.ListEndpoints"}),
    ("POST", {"Host": "rebound.evil.example:4566", "Content-Type": "application/x-amz-json-1.1",
              "X-Amz-Target": "SageMaker.ListEndpoints"}),
])
def test_web_pages_cannot_reach_the_local_aws(local_aws, method, headers):
    """A page in the user's browser (cross-origin, or by DNS rebinding) must not drive the twin: it would run a
    model's inference.py as the user."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(local_aws.url + "/", data=b"{}" if method == "POST" else None, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, allowed = reply.status, reply.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as exc:
        status, allowed = exc.code, exc.headers.get("Access-Control-Allow-Origin")
    assert (status, allowed) == (403, None)
