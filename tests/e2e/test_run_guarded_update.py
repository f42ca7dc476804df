"""A guarded (blue/green) update under load in the twin, as `sme run` sees it: the traffic shifts in the configured
steps, a request counts on the fleet that served it, and a v2 that fails requests trips the rollback alarm during
its canary's baking period and is rolled back (exit 4), the report naming the step and the alarm.
"""

from __future__ import annotations

import html
import json
import tarfile
from pathlib import Path

import pytest

from tests.e2e.test_run import NAME, nothing_left, sme_run, three_zone_twin, write_files

CANARY = "  update: {strategy: canary, canary_size: 50, wait: %s, termination_wait: 0s, alarms: auto, error_threshold: 1}"


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    yield from three_zone_twin(tmp_path_factory, "guarded-twin", 31)


def guarded(work: Path, model, subnets, group, wait: str, v2_model: Path | None = None, seconds: int = 35) -> Path:
    run_file = write_files(work, model, subnets, group, v2_model=v2_model, seconds=seconds,
                           events="  - {at: 4s, deploy: sme-v2.yaml}")
    v2 = (work / "sme-v2.yaml").read_text()
    start = v2.index("  update:")
    (work / "sme-v2.yaml").write_text(v2[:start] + CANARY % wait + v2[v2.index("\n", start):])
    return run_file


def failing_model(tmp_path: Path, model_tar: Path) -> Path:
    """The demo model with a handler whose predict_fn raises: it loads and answers /ping, every request fails."""
    code = tmp_path / "inference.py"
    code.write_text("def predict_fn(data, model):\n    raise RuntimeError('v2 is broken')\n")
    out = tmp_path / "v2-broken.tar.gz"
    with tarfile.open(model_tar) as src, tarfile.open(out, "w:gz") as tar:
        for member in src.getmembers():
            tar.addfile(member, src.extractfile(member))
        tar.add(code, arcname="code/inference.py")
    return out


def fleet_invocations(twin, config: str) -> float:
    cw = twin.client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": NAME}, {"Name": "VariantName", "Value": "AllTraffic"},
            {"Name": "EndpointConfigName", "Value": config}]
    reply = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dims,
                                     StartTime="2020-01-01", EndTime="2100-01-01", Period=86400, Statistics=["Sum"])
    return sum(p["Sum"] for p in reply["Datapoints"])


def test_a_healthy_canary_shifts_in_its_steps_and_ends_on_v2_without_errors(twin, tmp_path):
    twin, model, subnets, group = twin
    run_file = guarded(tmp_path / "canary", model, subnets, group, wait="4s")
    out = tmp_path / "canary" / "out"
    proc = sme_run(twin, run_file, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [update] = json.loads((out / "run.json").read_text())["events"]
    assert update["outcome"] == "ok" and update["ended_on_asked"], update
    steps = update["traffic_steps"]
    assert [(s["step"], s["share"] and round(s["share"], 3)) for s in steps] == [(1, 0.333), (2, 1.0)], update
    assert steps[1]["time"] - steps[0]["time"] >= 4, "step 2 waits for the canary's baking period"
    assert update["alarms_fired"] == [], update
    assert [t["config"] for t in update["transitions"] if t["status"] == "Updating"] == [update["from_config"]], \
        "while Updating, DescribeEndpoint shows the old config, as AWS does"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0, summary
    # a request counts on the fleet that served it: both fleets served some from the first shift on
    assert fleet_invocations(twin, update["from_config"]) > 0 and fleet_invocations(twin, update["final_config"]) > 0
    page = (out / "report.html").read_text()
    assert "step 1 at " in page and "33% of the traffic on the new fleet; 0 error(s)" in page
    assert "100% of the traffic on the new fleet" in page and "ended on the asked config" in page
    nothing_left(twin, tmp_path / "canary")


def test_a_v2_that_fails_requests_trips_the_alarm_while_baking_and_is_rolled_back(twin, tmp_path):
    twin, model, subnets, group = twin
    broken = failing_model(tmp_path, model.model_tar)
    run_file = guarded(tmp_path / "broken", model, subnets, group, wait="12s", v2_model=broken)
    out = tmp_path / "broken" / "out"
    proc = sme_run(twin, run_file, out)
    assert proc.returncode == 4, proc.stderr[-4000:]
    [update] = json.loads((out / "run.json").read_text())["events"]
    assert update["outcome"] == "rolled_back" and update["final_config"] == update["from_config"], update
    assert update["alarms_fired"] == [f"sme-{NAME}-AllTraffic-5xx"], update
    # rolled back during the canary's bake, never reaching step 2 (on a quiet machine the alarm can trip within
    # one poll of DescribeEndpoint, and the short canary step then goes unseen: the rollback is seen either way)
    steps = [s["step"] for s in update["traffic_steps"]]
    assert steps in ([1], []), "rolled back during the canary's baking period"
    assert "CloudWatch alarm" in (update["failure_reason"] or ""), update
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["failures"] < summary["requests"], "only the canary's share failed"
    page = html.unescape((out / "report.html").read_text())
    during = "during step 1" if steps else "during a traffic step too short for sme's poll to see"
    assert f"alarm sme-{NAME}-AllTraffic-5xx fired {during}; SageMaker rolled all traffic back" in page
    nothing_left(twin, tmp_path / "broken")
