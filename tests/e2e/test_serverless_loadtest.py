"""`sme loadtest` against a serverless endpoint in the twin: the real CLI deploys it and loads it; the run's
cold starts and throttles are counted and reconcile with what the twin saw (runtimes it started, CloudWatch
Invocations, ModelSetupTime samples)."""

from __future__ import annotations

import json

import pytest

from tests.support.twin_env import twin_environment

from tests.conftest import run_sme

pytestmark = pytest.mark.timeout(240)
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from sme.local.aws.twin import LocalAws

    local = LocalAws(workdir=tmp_path_factory.mktemp("serverless-local"), metrics_period=1.0).start()
    yield local
    local.stop()


@pytest.fixture
def twin_env(twin, tmp_path):
    return twin_environment(twin, tmp_path / ".sme", SME_CLOUDWATCH_WAIT_S="30")


def test_a_serverless_load_test_counts_cold_starts_and_throttles_and_they_reconcile(twin, twin_env, tmp_path):
    from sme.local.demo_model import build_demo_model

    model = build_demo_model(tmp_path / "model", payload_rows=20)
    (tmp_path / "sme.yaml").write_text(f"""
name: sl
region: us-east-1
model: {{image: {IMAGE}, model_data: {model.model_tar}, role: create}}
endpoint:
  variants:
    - name: AllTraffic
      serverless: {{memory_mb: 1024, max_concurrency: 2}}
""")
    deployed = run_sme("deploy", "-c", "sme.yaml", "--poll-interval", "0.2s", "--timeout", "60s",
                       env=twin_env, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    workdir = twin.endpoints.launcher.workdir
    before = len(list(workdir.glob("instance-*.status.json")))
    assert before == 0, "an on-demand serverless endpoint starts no runtime before a request"
    # 40 req/s for 4 s: the first requests wait ~1 s for start-ups, and the ones beyond 2 at once are throttled
    (tmp_path / "load.yaml").write_text(f"""
target: {{endpoint: sl}}
payload: {{file: {model.payload_csv}, content_type: text/csv, split: lines}}
stages:
  - {{duration: 4s, rate: 40}}
""")
    run = run_sme("loadtest", "-c", "load.yaml", "--out", "run", env=twin_env, cwd=tmp_path, timeout=180)
    assert run.returncode == 0, run.stderr
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    serverless = s["serverless"]
    started = len(list(workdir.glob("instance-*.status.json")))
    throttled = [e for e in s["errors"] if e.get("error_code") == "ThrottlingException"]
    assert throttled and throttled[0]["code"] == "400", s["errors"]
    assert serverless["throttles"] == throttled[0]["count"] > 0
    assert s["failures"] == serverless["throttles"], "nothing failed but throttles"
    assert serverless["complete"] and serverless["cloudwatch_invocations"] == s["requests"] - serverless["throttles"]
    assert 1 <= serverless["cold_starts"] == started <= 2, "each runtime the twin started is one cold start"
    assert serverless["model_setup_time_ms"]["max"] > 100, "a real runtime's start-up, in milliseconds"
    assert f"{started} cold starts" in run.stdout and f"{serverless['throttles']} throttled" in run.stdout, run.stdout

    # sme watch: the serverless metrics of the same minutes, no instance metrics
    watched = run_sme("watch", "--endpoint", "sl", "--once", "--interval", "120s", "--json", env=twin_env, cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    metrics = json.loads(watched.stdout.splitlines()[-1])["metrics"]["AllTraffic"]
    assert metrics["ModelSetupTime"] == pytest.approx(serverless["model_setup_time_ms"]["max"] * 1000, rel=0.01)
    assert 0 < metrics["ServerlessConcurrentExecutionsUtilization"] <= 1, "a share of MaxConcurrency"
    assert metrics["Invocations"] == serverless["cloudwatch_invocations"]
    assert not {"CPUUtilization", "InvocationsPerInstance", "ServerlessProvisionedConcurrencyInvocations"} & set(metrics)
