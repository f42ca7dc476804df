"""`sme run` in the twin, as a user runs it: `sme local start` in one process, `sme run` in another.

One short run (about a minute of load) with an update under load and a zone failure; one with an update
whose new model cannot load (SageMaker's rollback, exit 4); a bad run file (exit 2, nothing deployed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.e2e.twin.conftest import running_twin

NAME = "runexp"


def three_zone_twin(tmp_path_factory, name: str, octet: int):
    """A twin with a VPC of three /28 subnets (11 usable addresses each), one per zone, and a security group:
    yields (twin, model, subnets, group)."""
    with running_twin(tmp_path_factory.mktemp(name)) as (twin, model):
        ec2 = twin.client("ec2")
        vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
        group = ec2.create_security_group(GroupName="sme-run", Description="sme run", VpcId=vpc)["GroupId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/28", AvailabilityZone=f"us-east-1{az}")
                   ["Subnet"]["SubnetId"] for i, az in enumerate("abc")]
        yield twin, model, subnets, group


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    yield from three_zone_twin(tmp_path_factory, "run-twin", 30)


def experiment(model_tar: Path, subnets, group, extra_env="", update=""):
    return f"""name: {NAME}
region: us-east-1
model:
  image: xgboost:1.7-1
  model_data: {model_tar}
  role: create
  environment: {{SAGEMAKER_MODEL_SERVER_WORKERS: "1"{extra_env}}}
network: {{subnets: [{", ".join(subnets)}], security_groups: [{group}]}}
endpoint:
  variants: [{{name: AllTraffic, instance_type: ml.m5.large, count: 3}}]
{update}
autoscaling: {{min: 3, max: 4, target: 100000}}
"""


def write_files(work: Path, model, subnets, group, *, v2_model: Path | None = None, events: str,
                seconds: int = 45, slo: str = "{error_rate: 0.5}") -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "sme.yaml").write_text(experiment(model.model_tar, subnets, group))
    (work / "sme-v2.yaml").write_text(experiment(v2_model or model.model_tar, subnets, group,
                                                 extra_env=', RELEASE: "v2"',
                                                 update="  update: {strategy: canary, canary_size: 50, wait: 2s, termination_wait: 0s}"))
    (work / "load.yaml").write_text(f"""target: {{endpoint: {NAME}}}
payload: {{file: {model.payload_csv}, content_type: text/csv, split: lines}}
stages: [{{duration: {seconds}s, rate: 40}}]  # open model: the events, not the load, are what is tested
slo: {slo}
""")
    (work / "run.yaml").write_text(f"""experiment: sme.yaml
load: load.yaml
watch: {{interval: 3s}}
events:
{events}
""")
    return work / "run.yaml"


def sme_run(twin, run_file: Path, out: Path, timeout=300):
    return subprocess.run([sys.executable, "-m", "sme", "run", "-c", str(run_file), "--out", str(out),
                           "--poll-interval", "1s", "--timeout", "2m"], env=twin.env, cwd=run_file.parent,
                          capture_output=True, text=True, timeout=timeout)


def nothing_left(twin, work: Path):
    sm = twin.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == [], "the endpoint should be torn down"
    assert not (Path(twin.env["SME_STATE_DIR"]) / f"{NAME}.json").exists(), "the deploy state should be gone"
    eni = twin.client("ec2").describe_network_interfaces()["NetworkInterfaces"]
    assert [n for n in eni if NAME in (n.get("Description") or "")] == [], "every ENI should be released"
    left = subprocess.run(["pgrep", "-f", f"sme (watch|deploy|loadtest).*{work}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"processes left running: {left.stdout}"


def test_an_update_under_load_and_a_lost_zone_are_on_the_report_with_verdicts(twin, tmp_path):
    twin, model, subnets, group = twin
    run_file = write_files(tmp_path / "good", model, subnets, group,
                           events="  - {at: 8s, deploy: sme-v2.yaml}\n  - {at: 20s, fail_zone: us-east-1a}\n"
                                  "  - {at: 32s, scale: {min: 4}}")
    out = tmp_path / "good" / "out"
    proc = sme_run(twin, run_file, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((out / "run.json").read_text())
    update, zone, scale = record["events"]
    assert update["kind"] == "deploy" and update["outcome"] == "ok", update
    assert update["ended_on_asked"] and update["final_config"] != update["from_config"], update
    assert zone["kind"] == "fail_zone" and zone["outcome"] == "ok", zone
    assert zone["lost"] and all(l["subnet"] == subnets[0] for l in zone["lost"]), zone["lost"]
    assert zone["replaced_s"] is not None and zone["instances_after"] == zone["instances_before"], zone
    free_after = {s["id"]: s["free_ips"] for s in zone["subnets_after"]}
    assert free_after[subnets[0]] == 11, "every address in the failed zone is released"
    # every instance left holds an address in a surviving subnet (/28: 11 usable addresses each); counted
    # from the free addresses alone, since the update's old fleet may be retiring at the same moment
    used_after = sum(11 - free_after[s] for s in subnets[1:])
    assert used_after >= sum(zone["instances_after"].values()), "the replacements took addresses in the surviving subnets"
    assert scale["outcome"] == "ok" and scale["instances"] == {"AllTraffic": 4}, (json.dumps(scale),
                                                                                proc.stderr[-3000:])
    # (whether the zone fails during the update's last seconds or just after depends on the machine's speed:
    # both events' verdicts are checked, not their overlap)
    page = (out / "report.html").read_text()
    assert "Events of the run" in page and "deploy sme-v2.yaml" in page and "fail_zone us-east-1a" in page
    assert "ended on the asked config" in page and "capacity replaced after" in page
    assert "instances inside [4, 4]" in page
    nothing_left(twin, tmp_path / "good")


def test_an_update_whose_model_cannot_load_is_rolled_back_and_exits_4(twin, tmp_path):
    twin, model, subnets, group = twin
    broken = tmp_path / "broken.tar.gz"
    junk = tmp_path / "xgboost-model"
    junk.write_bytes(b"this is not a model")
    with tarfile.open(broken, "w:gz") as tar:
        tar.add(junk, arcname="xgboost-model")
    run_file = write_files(tmp_path / "bad-update", model, subnets, group, v2_model=broken, seconds=25,
                           events="  - {at: 5s, deploy: sme-v2.yaml}")
    out = tmp_path / "bad-update" / "out"
    proc = sme_run(twin, run_file, out)
    assert proc.returncode == 4, proc.stderr[-4000:]
    [update] = json.loads((out / "run.json").read_text())["events"]
    assert update["outcome"] == "rolled_back" and update["final_config"] == update["from_config"], update
    page = (out / "report.html").read_text()
    assert "rolled back" in page
    nothing_left(twin, tmp_path / "bad-update")


def test_a_load_that_misses_its_slo_makes_the_run_exit_3_after_the_report_and_teardown(twin, tmp_path):
    twin, model, subnets, group = twin
    run_file = write_files(tmp_path / "slow", model, subnets, group, seconds=6, events="  []",
                           slo="{p99_ms: 0.01}")  # no real model answers in 10 microseconds
    out = tmp_path / "slow" / "out"
    proc = sme_run(twin, run_file, out)
    assert proc.returncode == 3, proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["slo"]["passed"] is False, summary["slo"]
    assert (out / "report.html").exists()
    nothing_left(twin, tmp_path / "slow")


@pytest.mark.parametrize("events, edit, said", [
    ("  - {at: 5s, fail_zone: us-east-1d}", None, ["events[0].fail_zone", "us-east-1d holds none"]),
    ("  - {at: 50s, scale: {min: 4}}", None, ["events[0].at"]),
    ("  - {at: 5s, reboot: all}", None, ["events[0]", "reboot"]),
    ("  []", ("load: load.yaml", "load: missing.yaml"), ["load", "missing.yaml"]),
])
def test_a_bad_run_file_exits_2_naming_the_field_with_nothing_deployed(twin, tmp_path, events, edit, said):
    twin, model, subnets, group = twin
    run_file = write_files(tmp_path / "bad", model, subnets, group, events=events)
    if edit:
        run_file.write_text(run_file.read_text().replace(*edit))
    proc = sme_run(twin, run_file, tmp_path / "bad" / "out", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert all(s in proc.stderr for s in said) and "Traceback" not in proc.stderr, proc.stderr
    assert twin.client("sagemaker").list_endpoints()["Endpoints"] == []
    assert not (tmp_path / "bad" / "out").exists(), "nothing is written before the checks pass"


@pytest.mark.parametrize("phase", ["deploy", "load"])
def test_ctrl_c_stops_everything_writes_what_ran_and_tears_down(twin, tmp_path, phase):
    import os
    import signal
    import time

    twin, model, subnets, group = twin
    work = tmp_path / phase
    run_file = write_files(work, model, subnets, group, seconds=40, events="  - {at: 30s, fail_zone: us-east-1b}")
    out = work / "out"
    proc = _start_in_phase(twin, run_file, out, phase, poll=0.2)
    time.sleep(4 if phase == "load" else 0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground process group
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["interrupted"] is True
    if phase == "deploy":
        assert record.get("events", []) == [] and "no report" in err
    if phase == "load":
        summary = json.loads((out / "summary.json").read_text())
        assert summary["partial"] and summary["requests"] > 0
        assert "report.html" in os.listdir(out), "the report of what ran is written"
    nothing_left(twin, work)


def _start_in_phase(twin, run_file: Path, out: Path, phase: str, poll: float) -> subprocess.Popen:
    """`sme run` started in a session of its own, returned once run.json says it is in ``phase``."""
    import time

    proc = subprocess.Popen([sys.executable, "-m", "sme", "run", "-c", str(run_file), "--out", str(out),
                             "--poll-interval", "1s"], env=twin.env, cwd=run_file.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while not _in_phase(out, phase):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(poll)
    return proc


def _in_phase(out: Path, phase: str) -> bool:
    try:
        record = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return False
    started = [p["phase"] for p in record.get("phases", [])]
    return phase in started and (phase != "load" or (out / "timeseries.csv").exists())


def test_ctrl_c_while_the_report_is_written_still_tears_down_and_exits_130(twin, tmp_path):
    """The signal is sent the moment run.json says the report phase started. Writing the report takes longer
    than that here, but a busy machine may finish it first: then the signal lands in the teardown, and the
    guarantee is the other half (the endpoint stays recorded, so `sme teardown` removes it)."""
    import os
    import signal

    twin, model, subnets, group = twin
    work = tmp_path / "report"
    run_file = write_files(work, model, subnets, group, seconds=8, events="  []")
    out = work / "out"
    proc = _start_in_phase(twin, run_file, out, "report", poll=0.02)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["interrupted"] is True
    phases = {p["phase"]: p for p in record["phases"]}
    assert phases["load"]["outcome"] == "ok", "the load had ended: it is not what was stopped"
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")], "no half-written file (write_atomic's temp)"
    if "outcome" not in phases["report"]:  # the signal stopped the report: it is skipped, the teardown runs
        assert "skipped report (interrupted)" in err, err[-3000:]
        assert phases["teardown"]["outcome"] == "ok", phases
    else:  # the report was done first: the teardown was skipped, and the endpoint is still recorded
        assert (Path(twin.env["SME_STATE_DIR"]) / f"{NAME}.json").exists(), "the endpoint stays recorded"
        subprocess.run([sys.executable, "-m", "sme", "teardown", "--name", NAME], env=twin.env, cwd=work,
                       capture_output=True, timeout=120, check=True)
    nothing_left(twin, work)
