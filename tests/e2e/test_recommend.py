"""`sme recommend` in the twin, as a user runs it: real deploys of two instance types, real ladders, real
teardowns; a sweep killed mid-candidate and resumed; bad files refused with nothing deployed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.twin_env import twin_environment

from tests.conftest import run_sme
from tests.e2e.test_report_browser import Browser, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from sme.local.aws.twin import LocalAws
    from sme.local.demo_model import build_demo_model

    work = tmp_path_factory.mktemp("recommend")
    local = LocalAws(workdir=work / "local", metrics_period=1.0).start()
    local.model = build_demo_model(work / "model", payload_rows=50)
    yield local
    local.stop()


@pytest.fixture
def twin_env(twin, tmp_path):
    return twin_environment(twin, tmp_path / ".sme")


def write_files(tmp_path: Path, twin, *, steps: int = 3, every: str = "3s", parallel: int = 2,
                candidates: str = "  - {instance_type: ml.c5.large}\n  - {instance_type: ml.m5.xlarge}\n",
                network: str = "", extra: str = "", peak: int = 300) -> None:
    (tmp_path / "sme.yaml").write_text(f"""name: rec
region: us-east-1
model: {{image: xgboost:1.7-1, model_data: {twin.model.model_tar}, role: create}}
{network}endpoint:
  variants: [{{instance_type: ml.m5.large}}]
""")
    (tmp_path / "recommend.yaml").write_text(f"""experiment: sme.yaml
candidates:
{candidates}load:
  payload: {{file: {twin.model.payload_csv}, content_type: text/csv, split: lines}}
  stages: [{{steps: {{kind: rate, start: 20, step: 40, every: {every}, count: {steps}, until_slo_breach: true}}}}]
slo: {{p99_ms: 500, error_rate: 0.01}}
peak_rps: {peak}
parallel: {parallel}
{extra}""")


VCPUS = {"ml.c5.large": 2, "ml.m5.xlarge": 4}


def endpoints_left(twin) -> list[str]:
    import boto3

    sm = boto3.client("sagemaker", endpoint_url=twin.url, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    return [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]


def runtimes_running(twin) -> int:
    return sum(1 for ep in twin.endpoints.live_endpoints() for fleet in (ep.live, ep.pending) if fleet
               for i in fleet.all() if i.proc.poll() is None)


def test_a_sweep_of_two_instance_types_ranks_them_and_leaves_nothing(twin, twin_env, tmp_path, browser):  # noqa: F811
    write_files(tmp_path, twin, extra="watch: {interval: 1s}\n")
    run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", "--poll-interval", "0.5s", env=twin_env,
                  cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "recommendation.json").read_text())
    rows = {r["name"]: r for r in doc["candidates"]}
    assert set(rows) == {"c5-large", "m5-xlarge"}
    for r in rows.values():
        assert r["passed"] and r["knee_rps"] > 0 and r["p99_ms_at_knee"] <= 500, r
        assert r["usd_per_hour_at_peak"] == pytest.approx(r["instances_for_peak"] * r["usd_per_hour"], rel=1e-3)
        assert r["usd_per_million"] == pytest.approx(r["usd_per_hour_at_peak"] / (300 * 3600) * 1e6, rel=1e-3)
        summary = json.loads((tmp_path / "out" / r["run"] / "summary.json").read_text())
        assert summary["requests"] > 0, "each candidate's run folder is what `sme loadtest` wrote"
        assert (tmp_path / "out" / r["report"]).exists()
        assert r["watch_samples_at_knee"] >= 1 and r["cpu_pct_at_knee"] > 0 and r["memory_pct_at_knee"] > 0, r
        assert r["cpu_pct_of_instance"] == pytest.approx(r["cpu_pct_at_knee"] / VCPUS[r["instance_type"]], abs=0.1)
        assert r["limit"].startswith(("the instance", "the model server")), r["limit"]
        assert f"limit: {r['limit']}" in " ".join(run.stderr.split()), "the summary says what limited it"
        page = (tmp_path / "out" / r["report"]).read_text()
        assert "CPU, memory (CloudWatch mean)" in page, "the candidate's report shows CPU and memory per step"
    cheapest = min(rows.values(), key=lambda r: r["usd_per_hour_at_peak"])
    assert doc["best"]["name"] == cheapest["name"] == doc["candidates"][0]["name"]
    assert "local numbers" in doc["machine_note"] and "local numbers" in run.stderr
    assert endpoints_left(twin) == [] and runtimes_running(twin) == 0
    sweep = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [(c["status"], c["deployed"]) for c in sweep["candidates"]] == [("done", False)] * 2

    browser.open(tmp_path / "out" / "report.html")
    drawn = browser.evaluate("JSON.stringify([...document.querySelectorAll('#curves path.series')].map("
                             "p => [p.dataset.name, +p.dataset.n, p.getTotalLength()]))")
    assert sorted(n for n, _, _ in json.loads(drawn)) == ["c5-large", "m5-xlarge"]
    assert all(n == len(rows[name]["curve"]) and length > 0 for name, n, length in json.loads(drawn))
    links = json.loads(browser.evaluate("JSON.stringify([...document.querySelectorAll('#candidates a')]"
                                        ".map(a => a.getAttribute('href')))"))
    assert sorted(links) == sorted(r["report"] for r in rows.values())
    cpu_cells = json.loads(browser.evaluate("JSON.stringify([...document.querySelectorAll('#candidates tr[data-name]')]"
                                            ".map(tr => [tr.dataset.name, tr.cells[9].textContent]))"))
    assert {name: text.split("%")[0] for name, text in cpu_cells} == {
        name: f"{r['cpu_pct_at_knee']:.0f}" for name, r in rows.items()}, "the sweep's page shows CPU at the knee"
    assert browser.errors == []


def test_a_killed_sweep_resumes_without_redoing_finished_candidates(twin, twin_env, tmp_path):
    write_files(tmp_path, twin, parallel=1, steps=3, every="5s", extra="watch: {interval: 1s}\n")
    sweep_file = tmp_path / "out" / "sweep.json"
    proc = subprocess.Popen([sys.executable, "-m", "sme", "recommend", "-c", "recommend.yaml", "--out", "out",
                             "--poll-interval", "0.5s"], env=twin_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:  # the first candidate done, the second in its ladder
            states = json.loads(sweep_file.read_text())["candidates"] if sweep_file.exists() else []
            if (states and states[0]["status"] == "done" and states[1]["status"] == "running"
                    and (tmp_path / "out" / "m5-xlarge" / "run" / "timeseries.csv").exists()):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the sweep never reached its second candidate's ladder: {states}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = tmp_path / "out" / "c5-large" / "run" / "summary.json"
    measured = first.stat().st_mtime_ns
    assert endpoints_left(twin), "the killed sweep left its second candidate deployed"

    resumed = run_sme("recommend", "--resume", "out", "--poll-interval", "0.5s", env=twin_env, cwd=tmp_path,
                      timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "c5-large: already done; not redone" in resumed.stderr
    assert "m5-xlarge: tearing down what the interrupted sweep left deployed" in resumed.stderr
    assert first.stat().st_mtime_ns == measured, "the finished candidate's run was not redone"
    doc = json.loads((tmp_path / "out" / "recommendation.json").read_text())
    assert all(r["passed"] and r["knee_rps"] for r in doc["candidates"]), doc["candidates"]
    assert endpoints_left(twin) == [] and runtimes_running(twin) == 0
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "out")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"sme processes of the sweep left running: {leftovers.stdout}"


def test_a_parallel_the_quota_cannot_hold_is_refused_with_how_many_fit(twin, twin_env, tmp_path):
    from sme.local.aws.patches.service_quotas import QUOTAS

    write_files(tmp_path, twin, candidates="  - {instance_type: ml.c5.large}\n  - {name: c5-large-w4, "
                "instance_type: ml.c5.large, environment: {SAGEMAKER_MODEL_SERVER_WORKERS: 4}}\n")
    QUOTAS[("us-east-1", "ml.c5.large for endpoint usage")] = 1
    try:
        run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", env=twin_env, cwd=tmp_path)
    finally:
        QUOTAS.clear()
    assert run.returncode == 2, run.stderr
    assert "recommend.yaml: parallel:" in run.stderr and "leaves 1 free" in run.stderr, run.stderr
    assert "1 would fit" in run.stderr and "set parallel: 1" in run.stderr
    assert endpoints_left(twin) == [] and not any((tmp_path / ".sme").glob("*.json")), "nothing deployed"
    assert not (tmp_path / "out" / "sweep.json").exists(), "a refused sweep can be started again as it was"


def test_a_parallel_the_free_addresses_cannot_hold_is_refused_with_how_many_fit(twin, twin_env, tmp_path):
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=twin.url, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="rec-ips", Description="rec", VpcId=vpc)["GroupId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/28", AvailabilityZone="us-east-1a")["Subnet"]
    taken = [ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]["NetworkInterfaceId"]
             for _ in range(subnet["AvailableIpAddressCount"] - 1)]  # someone else's interfaces: 1 address left
    try:
        write_files(tmp_path, twin, network=f"network: {{subnets: [{subnet['SubnetId']}], security_groups: [{group}]}}\n")
        run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", env=twin_env, cwd=tmp_path)
    finally:
        for eni in taken:
            ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert run.returncode == 2, run.stderr
    text = " ".join(run.stderr.split())
    assert "recommend.yaml: parallel:" in text and "address(es) in the subnets, which have 1 free" in text, text
    assert "1 would fit" in text and "Traceback" not in text
    assert endpoints_left(twin) == [] and not (tmp_path / "out" / "sweep.json").exists(), "nothing deployed"


@pytest.mark.parametrize("candidates, network, said", [
    ("  - {serverless: {memory_mb: 2048, max_concurrency: 4}}\n",
     "network: {subnets: [subnet-0a1b2c3d], security_groups: [sg-0a1b2c3d]}\n",
     ["recommend.yaml: candidates[0].serverless:", "VPC"]),
    ("  - {instance_type: ml.c5.large}\n  - {instance_type: ml.c5.larg}\n", "",
     ["recommend.yaml: candidates[1].instance_type:", "ml.c5.large"]),
])
def test_a_candidate_aws_would_refuse_is_refused_before_anything_is_deployed(twin, twin_env, tmp_path, candidates,
                                                                            network, said):
    write_files(tmp_path, twin, candidates=candidates, network=network)
    run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", env=twin_env, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert all(s in run.stderr for s in said), run.stderr
    assert "Traceback" not in run.stderr and endpoints_left(twin) == []
    assert not (tmp_path / "out").exists(), "nothing written for a file that was refused"


def test_a_serverless_candidate_is_priced_by_its_own_dimensions_and_best_is_the_cheapest_that_holds(
        twin, twin_env, tmp_path):
    write_files(tmp_path, twin, peak=40, candidates="  - {instance_type: ml.c5.large}\n"
                "  - {serverless: {memory_mb: 2048, max_concurrency: 4}}\n")
    run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", "--poll-interval", "0.5s", env=twin_env,
                  cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "recommendation.json").read_text())
    rows = {r["name"]: r for r in doc["candidates"]}
    lam = rows["serverless-2048mb-4"]
    assert lam["serverless"] == {"memory_mb": 2048, "max_concurrency": 4} and lam["knee_rps"], lam
    assert lam["usd_per_hour"] is None and lam["instances_for_peak"] is None, "no instances to price"
    assert lam["usd_per_million"] > 0 and lam["usd_per_hour_at_peak"] == pytest.approx(
        lam["usd_per_million"] * 40 * 3600 / 1e6, rel=1e-3), "priced per inference, from its memory and durations"
    assert lam["passed"] == (lam["knee_rps"] >= 40), lam
    passing = [r for r in rows.values() if r["passed"] and r["usd_per_hour_at_peak"] is not None]
    assert passing and doc["best"]["name"] == min(passing, key=lambda r: r["usd_per_hour_at_peak"])["name"]
    assert endpoints_left(twin) == [] and runtimes_running(twin) == 0


def test_serverless_candidates_beyond_the_accounts_concurrency_quota_are_refused(twin, twin_env, tmp_path):
    from sme.local.aws.patches.service_quotas import QUOTAS, SERVERLESS_CONCURRENCY

    write_files(tmp_path, twin, candidates="  - {serverless: {memory_mb: 2048, max_concurrency: 4}}\n"
                "  - {serverless: {memory_mb: 3072, max_concurrency: 4}}\n")
    QUOTAS[("us-east-1", SERVERLESS_CONCURRENCY)] = 6
    try:
        run = run_sme("recommend", "-c", "recommend.yaml", "--out", "out", env=twin_env, cwd=tmp_path)
    finally:
        QUOTAS.clear()
    assert run.returncode == 2, run.stderr
    said = " ".join(run.stderr.split())
    assert "recommend.yaml: parallel:" in said and "total concurrency of 8" in said and "leaves 6 free" in said, said
    assert "set parallel: 1" in said and endpoints_left(twin) == []


def test_teardown_by_the_sweeps_tag_finds_its_candidates_in_aws_after_the_local_state_is_lost(
        twin, twin_env, tmp_path):
    import shutil

    import boto3

    def deploy(name: str, sweep: str) -> None:
        (tmp_path / f"{name}.yaml").write_text(f"""name: {name}
region: us-east-1
model: {{image: xgboost:1.7-1, model_data: {twin.model.model_tar}, role: create}}
endpoint:
  variants: [{{instance_type: ml.c5.large}}]
tags: {{sme-sweep: {sweep}}}
""")
        done = run_sme("deploy", "-c", f"{name}.yaml", "--poll-interval", "0.5s", env=twin_env, cwd=tmp_path,
                       timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]

    for name, sweep in (("rec-a1b2c3-1", "a1b2c3"), ("rec-a1b2c3-2", "a1b2c3"), ("rec-d4e5f6-1", "d4e5f6")):
        deploy(name, sweep)
    shutil.rmtree(tmp_path / ".sme")  # the sweep's folder and sme's deploy state are lost: AWS's tags remain
    gone = run_sme("teardown", "--sweep", "a1b2c3", env=twin_env, cwd=tmp_path, timeout=180)
    assert gone.returncode == 0, gone.stderr[-2000:]
    assert "2 candidate(s) left in AWS: rec-a1b2c3-1, rec-a1b2c3-2" in " ".join(gone.stderr.split())
    assert endpoints_left(twin) == ["rec-d4e5f6-1"], "only the other sweep's candidate is left"
    iam = boto3.client("iam", endpoint_url=twin.url, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if "-a1b2c3-" in r["RoleName"]]
    assert roles == [], f"the sweep's roles are gone too: {roles}"
    again = run_sme("teardown", "--sweep", "a1b2c3", env=twin_env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing tagged sme-sweep=a1b2c3 is left" in again.stderr
    assert run_sme("teardown", "--sweep", "d4e5f6", env=twin_env, cwd=tmp_path, timeout=180).returncode == 0
    assert endpoints_left(twin) == [] and runtimes_running(twin) == 0
    bad = run_sme("teardown", "--sweep", "nope", env=twin_env, cwd=tmp_path)
    assert bad.returncode == 2 and "is not a sweep id" in bad.stderr and "Traceback" not in bad.stderr
