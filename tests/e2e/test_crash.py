"""Crash and concurrency safety of deploys: the real `sme` as a subprocess against the moto server.

A full experiment (artifact upload, `role: create`, autoscaling, auto-rollback alarms, the front door; then a
guarded update) is deployed with the process SIGKILLed right after AWS carried out its Nth mutating
call, before the reply reaches it (the worst moment: AWS did it, sme never heard). For every N in turn:
deploying again converges, a third deploy plans nothing, and teardown leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.test_deploy import model_tar  # noqa: F401  (fixture)

FAST = ("--poll-interval", "0.05s", "--timeout", "60s", "--skip-preflight")


def experiment(tmp_path, vpc, model_tar, count=1, update=""):
    cfg = tmp_path / "sme.yaml"
    cfg.write_text(f"""
name: churn
region: us-east-1
model:
  image: 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1
  model_data: {model_tar}
  role: create
network:
  subnets: {json.dumps(vpc["subnets"])}
  security_groups: [{vpc["security_group"]}]
endpoint:
  variants:
    - {{name: AllTraffic, instance_type: ml.m5.large, count: {count}}}
{update}
autoscaling: {{min: 1, max: 3}}
gateway: {{}}
""")
    return str(cfg)


GUARDED = "  update: {strategy: canary, canary_size: 50, wait: 1m, alarms: auto}"


def leftovers(boto) -> list[str]:
    """Everything an experiment named churn could have left in AWS."""
    sm, iam, apigw = boto("sagemaker"), boto("iam"), boto("apigateway")
    out = [f"model {m['ModelName']}" for m in sm.list_models()["Models"]]
    out += [f"config {c['EndpointConfigName']}" for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    out += [f"endpoint {e['EndpointName']}" for e in sm.list_endpoints()["Endpoints"]]
    out += [f"role {r['RoleName']}" for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("sme-")]
    out += [f"function {f['FunctionName']}" for f in boto("lambda").list_functions()["Functions"]]
    out += [f"log group {g['logGroupName']}" for g in boto("logs").describe_log_groups()["logGroups"]]
    out += [f"api {a['name']}" for a in apigw.get_rest_apis()["items"]]
    out += [f"usage plan {p['name']}" for p in apigw.get_usage_plans()["items"]]
    out += [f"api key {k['name']}" for k in apigw.get_api_keys()["items"]]
    out += [f"alarm {a['AlarmName']}" for a in boto("cloudwatch").describe_alarms()["MetricAlarms"]]
    out += [f"target {t['ResourceId']}" for t in boto("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]]
    s3 = boto("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        out += [f"object {o['Key']}" for o in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])]
        out += [f"upload {u['Key']}" for u in s3.list_multipart_uploads(Bucket=bucket["Name"]).get("Uploads", [])]
        out.append(f"bucket {bucket['Name']}")
    return out


def deploy_killed_after(n: int, cfg: str, moto, aws_env, cwd) -> tuple[int, str]:
    """Run `sme deploy`; SIGKILL it once AWS has carried out its nth mutating call. -> (returncode, op)."""
    proc = subprocess.Popen([sys.executable, "-m", "sme", "deploy", "-c", cfg, *FAST], env=aws_env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    lock = threading.Lock()

    def after(call):
        if not call.mutating:
            return
        with lock:
            seen.append(call.operation)
            if len(seen) == n:
                os.kill(proc.pid, signal.SIGKILL)
                time.sleep(0.2)  # the reply must not reach it first

    moto.recorder.after = after
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        moto.recorder.after = None
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode, seen[n - 1] if len(seen) >= n else ""


def converges(sme, cfg, boto, label):
    again = sme("deploy", "-c", cfg, *FAST)
    assert again.returncode == 0, f"{label}: deploy after the kill failed:\n{again.stderr}"
    third = sme("deploy", "-c", cfg, "--dry-run", *FAST)
    assert third.returncode == 0 and "no changes" in third.stderr, f"{label}: a third deploy plans:\n{third.stdout}"


def kill_points(sme, moto, aws_env, tmp_path, boto, cfg, before=None):
    """Kill after the 1st, 2nd, ... mutating call until a deploy runs through; returns the ops killed after."""
    killed = []
    for n in range(1, 80):
        if before:
            before()
        moto.recorder.calls.clear()
        code, op = deploy_killed_after(n, cfg, moto, aws_env, tmp_path)
        if code == 0:
            return killed
        killed.append(op)
        converges(sme, cfg, boto, f"killed after call {n} ({op})")
        down = sme("teardown", "--name", "churn")
        assert down.returncode == 0, down.stderr
        assert leftovers(boto) == [], f"teardown after a kill after call {n} ({op}) left {leftovers(boto)}"
    raise AssertionError("the deploy never ran through")


@pytest.mark.timeout(600)  # ~25 kill points x 4 `sme` runs: 150 s on CI's machine, 290 s on a slow one
def test_a_deploy_killed_after_any_mutating_call_converges_and_tears_down(sme, vpc, model_tar, moto, aws_env,
                                                                         tmp_path, boto):
    cfg = experiment(tmp_path, vpc, model_tar, update=GUARDED)
    killed = kill_points(sme, moto, aws_env, tmp_path, boto, cfg)
    # the calls the recorder names, and REST calls by their path (S3, Lambda, API Gateway)
    wanted = ("CreateRole", "PutRolePolicy", "CreateModel", "CreateEndpoint", "RegisterScalableTarget", "PutMetricAlarm",
              "CreateLogGroup", "PutRetentionPolicy", "PUT /sme-123456789012-us-east-1", "POST /2015-03-31/functions",
              "POST /restapis", "/methods/POST", "/integration", "/policy", "/deployments", "POST /apikeys",
              "POST /usageplans", "/keys")
    for op in wanted:
        assert any(op in k for k in killed), f"no kill after {op}: {killed}"
    assert len(killed) >= 25, killed


def test_an_update_killed_after_any_mutating_call_converges(sme, vpc, model_tar, moto, aws_env, tmp_path, boto):
    base = experiment(tmp_path, vpc, model_tar, count=1, update=GUARDED)

    def deployed_first():
        assert sme("deploy", "-c", base, *FAST).returncode == 0

    cfg = str(tmp_path / "v2.yaml")
    with open(base) as src, open(cfg, "w") as dst:
        dst.write(src.read().replace("count: 1", "count: 2"))
    killed = kill_points(sme, moto, aws_env, tmp_path, boto, cfg, before=deployed_first)
    for op in ("CreateEndpointConfig", "DeleteScalingPolicy", "DeregisterScalableTarget",
               "UpdateEndpoint", "RegisterScalableTarget", "PutScalingPolicy"):
        assert op in killed, f"no kill after {op}: {killed}"


def test_concurrent_deploys_of_one_experiment_one_runs_the_others_refuse(sme, vpc, model_tar, moto, aws_env,
                                                                        tmp_path, boto):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    cfg = experiment(tmp_path, vpc, model_tar)
    LIFECYCLE.describes_to_ready = 40  # the first deploy holds the lock while it waits for InService
    procs = [subprocess.Popen([sys.executable, "-m", "sme", "deploy", "-c", cfg, *FAST], env=aws_env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1, 1], results
    for code, err in results:
        if code:
            assert "is locked by `sme deploy`" in err and "Traceback" not in err, err
    state = json.loads((tmp_path / ".sme" / "churn.json").read_text())
    kinds = sorted({r["kind"] for r in state["resources"]})
    assert kinds == sorted({"artifact", "bucket", "role", "model", "endpoint-config", "endpoint", "scalable-target",
                            "scaling-policy", "gateway-role", "log-group", "lambda", "gateway-api", "gateway-key",
                            "usage-plan"}), kinds
    assert state["secrets"].get("api_key") and state["outputs"].get("gateway_url")
    waited = sme("deploy", "-c", cfg, "--dry-run", *FAST)
    assert "no changes" in waited.stderr, waited.stdout


@pytest.mark.parametrize("wait", ["0s", "30s"])
def test_a_second_deploy_waits_for_the_lock_or_refuses(sme, vpc, model_tar, aws_env, tmp_path, wait, monkeypatch):
    from sme.state import experiment_lock

    cfg = experiment(tmp_path, vpc, model_tar)
    monkeypatch.setenv("SME_STATE_DIR", aws_env["SME_STATE_DIR"])  # this process's lock is the CLI's
    release = threading.Event()

    def hold():
        with experiment_lock("churn", "deploy"):
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.3)
    if wait == "0s":
        refused = sme("deploy", "-c", cfg, *FAST)
        release.set()
        assert refused.returncode == 1 and f"pid {os.getpid()}" in refused.stderr, refused.stderr
    else:
        # released once the CLI says it waits (a timer raced the CLI's start on a busy machine: it could
        # release the lock before the CLI ever reached it)
        proc = subprocess.Popen([sys.executable, "-m", "sme", "deploy", "-c", cfg, "--lock-timeout", wait, *FAST],
                                env=aws_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []

        def read() -> None:
            for line in proc.stderr:
                lines.append(line)
                if "waiting for the lock on churn" in line:
                    release.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            proc.wait(timeout=120)
        finally:
            release.set()
            proc.kill()
            reader.join(10)
        assert proc.returncode == 0, "".join(lines)
        assert any("waiting for the lock on churn" in line for line in lines), lines
    holder.join()
