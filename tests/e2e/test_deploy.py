"""The real `sme deploy / status / teardown` as subprocesses against a moto server on loopback."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from tests.conftest import ACCOUNT

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture
def model_tar(tmp_path):
    path = tmp_path / "model.tar.gz"
    payload = b"not a real model, but real bytes"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def deploy_args(vpc, model_tar, *extra, count=2, image=IMAGE, role=ROLE):
    args = ["deploy", "--name", "churn", "--image", image, "--model-data", str(model_tar), "--instance-type",
            "ml.m5.large", "--count", str(count), "--role", role, "--security-group", vpc["security_group"],
            "--poll-interval", "0.05s", "--timeout", "60s"]
    for subnet in vpc["subnets"]:
        args += ["--subnet", subnet]
    return args + list(extra)


def tagged(boto, name="churn"):
    """Every SageMaker resource tagged for the experiment, found through SageMaker's own calls."""
    sm = boto("sagemaker")
    out = []
    for op, key, arn_key in (("list_models", "Models", "ModelArn"),
                             ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigArn"),
                             ("list_endpoints", "Endpoints", "EndpointArn")):
        for item in getattr(sm, op)()[key]:
            tags = sm.list_tags(ResourceArn=item[arn_key])["Tags"]
            if {"Key": "sme:experiment", "Value": name} in tags:
                out.append(item[arn_key])
    return out


def test_dry_run_prints_plan_and_changes_nothing(sme, vpc, model_tar, moto):
    result = sme(*deploy_args(vpc, model_tar, "--dry-run"))
    assert result.returncode == 0, result.stderr
    for word in ("create", "model", "endpoint-config", "endpoint", "upload", "churn-model-", "churn-config-"):
        assert word in result.stdout, f"{word!r} missing from plan:\n{result.stdout}"
    assert moto.recorder.mutating() == [], "a dry run made a mutating call"


def test_fresh_deploy_then_repeat_is_a_no_op(sme, vpc, model_tar, moto, boto, aws_env, tmp_path):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    LIFECYCLE.describes_to_ready = 3
    first = sme(*deploy_args(vpc, model_tar))
    assert first.returncode == 0, first.stderr
    assert "InService" in first.stderr
    endpoint = boto("sagemaker").describe_endpoint(EndpointName="churn")
    assert endpoint["EndpointStatus"] == "InService"
    model = boto("sagemaker").describe_model(ModelName=boto("sagemaker").describe_endpoint_config(
        EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]["ModelName"])
    assert sorted(model["VpcConfig"]["Subnets"]) == sorted(vpc["subnets"])
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith(f"s3://sme-{ACCOUNT}-us-east-1/churn/model-")
    state = json.loads((tmp_path / ".sme" / "churn.json").read_text())
    assert {r["kind"] for r in state["resources"]} >= {"bucket", "artifact", "model", "endpoint-config", "endpoint"}
    assert state["endpoint_configs"][-1]["name"] == endpoint["EndpointConfigName"]

    moto.recorder.reset()
    second = sme(*deploy_args(vpc, model_tar))
    assert second.returncode == 0, second.stderr
    assert "no changes" in second.stderr
    mutating = moto.recorder.mutating()
    assert mutating == [], f"repeat deploy made mutating calls: {mutating}"
    assert len(moto.recorder.calls) > 0, "the repeat deploy should have read the remote state"


def test_repeat_deploy_with_role_create_is_a_no_op(sme, vpc, model_tar, moto, boto):
    """`role: create` makes a role and puts its inline policy; the next deploy reads the policy back (IAM
    answers it URL-encoded, botocore decodes it) and must find it equal to the one it would write."""
    first = sme(*deploy_args(vpc, model_tar, role="create"))
    assert first.returncode == 0, first.stderr
    [role] = [r for r in boto("iam").list_roles()["Roles"] if r["RoleName"].startswith("sme-churn")]
    assert boto("iam").list_role_policies(RoleName=role["RoleName"])["PolicyNames"], "the role got no policy"
    moto.recorder.reset()
    again = sme(*deploy_args(vpc, model_tar, role="create"))
    assert again.returncode == 0 and "no changes" in again.stderr, again.stderr
    assert moto.recorder.mutating() == [], f"repeat deploy made mutating calls: {moto.recorder.mutating()}"


def test_count_change_updates_the_endpoint(sme, vpc, model_tar, moto, boto):
    assert sme(*deploy_args(vpc, model_tar, count=2)).returncode == 0
    before = boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointConfigName"]
    moto.recorder.reset()
    result = sme(*deploy_args(vpc, model_tar, count=3))
    assert result.returncode == 0, result.stderr
    after = boto("sagemaker").describe_endpoint(EndpointName="churn")
    assert after["EndpointConfigName"] != before
    assert after["ProductionVariants"][0]["DesiredInstanceCount"] == 3
    ops = [c.operation for c in moto.recorder.mutating()]
    assert ops == ["CreateEndpointConfig", "UpdateEndpoint"], ops  # same model: no new model, no upload


def test_injected_failure_exits_nonzero_with_reason(sme, vpc, model_tar):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    LIFECYCLE.fail_next["churn"] = "The primary container for production variant AllTraffic did not pass the ping health check."
    result = sme(*deploy_args(vpc, model_tar))
    assert result.returncode == 4, (result.returncode, result.stderr)
    assert "did not pass the ping health check" in result.stderr
    assert "Traceback" not in result.stderr


def test_silent_rollback_is_reported_as_failure(sme, vpc, model_tar):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    assert sme(*deploy_args(vpc, model_tar, count=2)).returncode == 0
    LIFECYCLE.rollback_next["churn"] = "update failed health checks"
    result = sme(*deploy_args(vpc, model_tar, count=3))
    assert result.returncode == 4, result.stderr
    assert "rolled the update back" in result.stderr


def test_deploy_killed_while_waiting_converges_when_run_again(sme, vpc, model_tar, moto, aws_env, tmp_path, boto):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    LIFECYCLE.hold.add("churn")
    proc = subprocess.Popen([sys.executable, "-m", "sme", *deploy_args(vpc, model_tar)], env=aws_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if "Creating" in (tmp_path / ".sme" / "churn.json").read_text() if (tmp_path / ".sme" / "churn.json").exists() else False:
            break
        state_file = tmp_path / ".sme" / "churn.json"
        if state_file.exists() and '"endpoint"' in state_file.read_text():
            break
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "run the same `sme deploy` again" in err
    assert boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Creating"

    LIFECYCLE.release("churn")
    moto.recorder.reset()
    again = sme(*deploy_args(vpc, model_tar))
    assert again.returncode == 0, again.stderr
    assert boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointStatus"] == "InService"
    assert moto.recorder.mutating() == [], "converging should only wait, not create again"


def test_teardown_leaves_nothing_tagged(sme, vpc, model_tar, boto, tmp_path):
    assert sme(*deploy_args(vpc, model_tar, role="create")).returncode == 0
    assert len(tagged(boto)) == 3
    assert boto("iam").get_role(RoleName="sme-churn-sagemaker")["Role"]["Path"] == "/sme/"
    result = sme("teardown", "--name", "churn")
    assert result.returncode == 0, result.stderr
    for kind in ("endpoint", "endpoint-config", "model", "role", "artifact", "bucket"):
        assert kind in result.stdout, f"teardown did not name {kind}:\n{result.stdout}"
    assert tagged(boto) == []
    assert boto("s3").list_buckets()["Buckets"] == []
    assert [r for r in boto("iam").list_roles()["Roles"] if r["RoleName"].startswith("sme-")] == []
    assert not (tmp_path / ".sme" / "churn.json").exists()
    again = sme("teardown", "--name", "churn")
    assert again.returncode == 0 and "nothing to tear down" in again.stderr


def test_teardown_rebuilds_lost_state_from_tags(sme, vpc, model_tar, boto, tmp_path):
    assert sme(*deploy_args(vpc, model_tar)).returncode == 0
    (tmp_path / ".sme" / "churn.json").unlink()
    result = sme("teardown", "--name", "churn")
    assert result.returncode == 0, result.stderr
    assert "found by tag" in result.stderr
    assert tagged(boto) == []


def test_status_shows_variants(sme, vpc, model_tar):
    assert sme(*deploy_args(vpc, model_tar, count=2)).returncode == 0
    table = sme("status", "--name", "churn")
    assert table.returncode == 0, table.stderr
    assert "InService" in table.stdout and "ml.m5.large" in table.stdout
    data = json.loads(sme("status", "--name", "churn", "--json").stdout)
    assert data["status"] == "InService"
    assert data["variants"] == [{"name": "AllTraffic", "instance_type": "ml.m5.large", "current_instances": 2,
                                 "desired_instances": 2, "weight": 1.0}]


def test_experiment_file_with_flag_override(sme, vpc, model_tar, tmp_path, boto):
    cfg = tmp_path / "sme.yaml"
    cfg.write_text(f"""
name: churn
region: us-east-1
model:
  image: xgboost:1.7-1
  model_data: {model_tar}
  role: {ROLE}
  environment: {{SAGEMAKER_CONTAINER_LOG_LEVEL: 20}}
network:
  subnets: {json.dumps(vpc["subnets"])}
  security_groups: [{vpc["security_group"]}]
endpoint:
  variants:
    - {{name: AllTraffic, instance_type: ml.m5.large, count: 1}}
tags: {{team: ml}}
""")
    result = sme("deploy", "-c", str(cfg), "--count", "2", "--poll-interval", "0.05s")
    assert result.returncode == 0, result.stderr
    ep = boto("sagemaker").describe_endpoint(EndpointName="churn")
    assert ep["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    model_name = boto("sagemaker").describe_endpoint_config(
        EndpointConfigName=ep["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    model = boto("sagemaker").describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["Image"] == IMAGE  # resolved through the SageMaker SDK
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}
    tags = boto("sagemaker").list_tags(ResourceArn=ep["EndpointArn"])["Tags"]
    assert {"Key": "team", "Value": "ml"} in tags
