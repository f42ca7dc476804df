"""`sme plan-capacity` for a streaming ladder (the knee on TTFT/ITL, tokens/s per step, cost per million output
tokens) and for a serverless endpoint (cost per inference, concurrency at the peak), against hand-computed
values, on hand-made run directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import write_loadtest, write_watch  # noqa: E402

from sme.capacity import plan  # noqa: E402
from sme.capacity_kinds import apply_stream, cost_per_million_tokens, serverless_plan  # noqa: E402
from sme.report.kind_cost import GB, table_rates  # noqa: E402
from sme.report.pricing import load_table  # noqa: E402
from sme.report.rundir import load_run  # noqa: E402

pytestmark = pytest.mark.timeout(120)
G5 = 1.408  # ml.g5.xlarge in the table, USD per hour


def sme(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", *args], capture_output=True, text=True, timeout=90, env=env)


def ladder_stream(level: float) -> tuple[float, float, float, float, float]:
    """(TTFT p50, TTFT p99, ITL p50, ITL p99, tokens/s): 25 tokens/s per unit of load; past 8 the TTFT p99
    (1,500 ms) and ITL p99 (90 ms) break."""
    return 100.0, (300.0 if level <= 8 else 1500.0), 20.0, (40.0 if level <= 8 else 90.0), level * 25


def stream_ladder(directory: Path, *, per_stage: bool = True, ttft_limit: float | None = 800.0) -> Path:
    write_loadtest(directory, [(30.0, 2.0), (30.0, 4.0), (30.0, 8.0), (30.0, 16.0)], kind="step", slo_p99=None,
                   stream=ladder_stream)
    path = directory / "summary.json"
    summary = json.loads(path.read_text())
    if ttft_limit is not None:
        summary["slo"]["checks"].append({"name": "ttft_p99_ms", "limit": ttft_limit, "actual": 1500.0,
                                         "passed": False})
    if not per_stage:
        for st in summary["stages"]:
            del st["stream"]
    path.write_text(json.dumps(summary))
    return directory


def plan_json(directory: Path, *args: str) -> tuple[int, dict]:
    done = sme("plan-capacity", str(directory), "--peak-rps", "20", "--p99-ms", "250", "--instances", "1",
               "--instance-type", "ml.g5.xlarge", "--prices", "table", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout else {}


@pytest.mark.parametrize("per_stage", [True, False], ids=["summary-per-step", "timeseries-rows"])
def test_streaming_knee_is_the_last_step_within_the_ttft_limit_and_prices_a_million_tokens(
        tmp_path: Path, per_stage: bool) -> None:
    code, data = plan_json(stream_ladder(tmp_path / "run", per_stage=per_stage))
    assert code == 0
    steps = {s["step"]: s for s in data["stream"]["steps"]}
    assert [steps[n]["tokens_per_s"] for n in (1, 2, 3, 4)] == pytest.approx([50.0, 100.0, 200.0, 400.0])
    assert steps[4]["ttft_p99_ms"] == pytest.approx(1500.0)
    assert data["stream"]["knee_step"] == 3 and data["knee_step"] == 3  # the instance plan follows it
    assert data["steps"][3]["held"] is False and "TTFT p99 1500.0 ms > 800 ms" in data["steps"][3]["why"]
    # 1 x $1.408/h / (200 tokens/s x 3600) x 10^6 = $1.955556 per million output tokens
    assert data["stream"]["usd_per_million_output_tokens_at_knee"] == pytest.approx(1.408 / 720_000 * 1e6)
    assert ("full histograms" in data["stream"]["basis"]) is per_stage


def test_flags_override_the_runs_stream_limits(tmp_path: Path) -> None:
    run = stream_ladder(tmp_path / "run", ttft_limit=None)
    code, data = plan_json(run, "--itl-p99-ms", "60")
    assert code == 0 and data["stream"]["knee_step"] == 3 and data["stream"]["limits"] == {"itl_p99_ms": 60.0}
    code, data = plan_json(run, "--ttft-p99-ms", "200")  # every step's TTFT p99 is 300 or more
    assert code == 3 and data["stream"]["knee_step"] is None and data["knee_step"] is None


def test_text_output_shows_tokens_against_ttft_per_step_and_the_cost(tmp_path: Path) -> None:
    done = sme("plan-capacity", str(stream_ladder(tmp_path / "run")), "--peak-rps", "20", "--p99-ms", "250",
               "--instances", "1", "--instance-type", "ml.g5.xlarge", "--prices", "table")
    assert done.returncode == 0, done.stderr
    assert "streaming knee: step 3, 200.0 output tokens/s at TTFT p99 300.0 ms on 1 instance(s)" in done.stdout
    assert "cost per million output tokens at the knee: $1.4080/hour / (200.0 tokens/s x 3600)" in done.stdout
    assert "BROKE: TTFT p99 1500.0 ms > 800 ms" in done.stdout
    assert "every step held the SLO" not in done.stderr  # step 4 broke on its TTFT


def test_without_stream_limits_the_knee_rests_on_the_other_checks_and_says_so(tmp_path: Path) -> None:
    run = load_run(stream_ladder(tmp_path / "run", ttft_limit=None))
    p = plan(run, 20.0, 250.0, 0.5, 1, 1, None)
    sp = apply_stream(p, run, {"ttft_p99_ms": None, "itl_p99_ms": None})
    assert sp.knee == 4 and any("no TTFT/ITL limit" in n for n in sp.notes)


def test_cost_per_million_tokens_formula() -> None:
    assert cost_per_million_tokens(3.6, 1000.0) == pytest.approx(1.0)  # $3.60/h at 1000 tokens/s: 3.6M/h
    assert cost_per_million_tokens(3.6, 0.0) is None


def serverless_ladder(directory: Path) -> Path:
    write_loadtest(directory, [(60.0, 10.0)], slo_p99=None)
    path = directory / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(serverless={"variant": "AllTraffic", "memory_mb": 2048, "max_concurrency": 10,
                               "provisioned_concurrency": 0}, bytes={"sent": 2 * GB, "received": GB})
    path.write_text(json.dumps(summary))
    write_watch(directory / "watch.jsonl", 60.0, start_offset=0.0, load=[(60.0, 10.0)], scale_out_at=None,
                subnets=False, model_latency_us=50_000.0, counts=lambda t: 0,
                serverless={"memory_mb": 2048, "max_concurrency": 10, "provisioned_concurrency": 0})
    return directory


def test_serverless_cost_per_inference_and_concurrency_at_the_peak(tmp_path: Path) -> None:
    run = load_run(serverless_ladder(tmp_path / "run"))
    sp = serverless_plan(run, 20.0, table_rates(load_table(), "us-east-1"))
    assert sp is not None and sp.seconds_per_inference == pytest.approx(0.05)  # 30 s over 600 Invocations
    # 2 GB x 0.05 s x $0.00002 = $0.000002; (3 GB / 600) x $0.016 = $0.00008; each $0.000082
    assert sp.usd_per_inference == pytest.approx(0.000082, rel=1e-6)
    assert sp.usd_per_million == pytest.approx(82.0, rel=1e-6)
    assert sp.usd_per_hour_at_peak == pytest.approx(0.000082 * 20 * 3600, rel=1e-6)
    assert sp.concurrency_at_peak == pytest.approx(1.0)  # 20 req/s x 0.05 s (Little's law)


def test_serverless_plan_prints_per_inference_cost_not_instances(tmp_path: Path) -> None:
    done = sme("plan-capacity", str(serverless_ladder(tmp_path / "run")), "--peak-rps", "400", "--p99-ms", "250",
               "--prices", "table")
    assert done.returncode == 0, done.stderr
    assert "cost per million inferences: $82.0000 (compute + data processed)" in done.stdout
    assert "400 x 0.0500 s = 20.0 of MaxConcurrency 10: ABOVE it, expect throttles" in done.stdout
    assert "autoscaling target" not in done.stdout and "unknown instance type" not in done.stdout


def in_process(directory: Path, **kw) -> tuple[int, str, str]:
    """The command's own function in this process (what a subprocess run hides from a mutation tool)."""
    import io

    from sme.capacity import CapacityOptions, run_plan_capacity
    from sme.console import Env

    env = Env(stdout=io.StringIO(), stderr=io.StringIO())
    opts = dict(directory=directory, peak_rps=400.0, p99_ms=250.0, use_pricing_api=False)
    code = run_plan_capacity(CapacityOptions(**{**opts, **kw}), env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()


def test_in_process_a_serverless_plan_ends_with_its_own_lines_after_the_knee(tmp_path: Path) -> None:
    code, out, err = in_process(serverless_ladder(tmp_path / "run"), region="eu-west-1")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(f"({load_table()['date']}, approximate; us-east-1 rates for eu-west-1)")
    lines = out.splitlines()
    knee = next(i for i, line in enumerate(lines) if line.startswith("highest step that held"))
    assert lines[knee] == "highest step that held: step 1, 10.0 req/s on 1 instance(s) = 10.00 req/s per instance"
    tail = "\n".join(lines[knee + 1:])
    assert "cost per million inferences: $82.0000 (compute + data processed)" in tail
    assert "400 x 0.0500 s = 20.0 of MaxConcurrency 10: ABOVE it, expect throttles" in tail
    assert "autoscaling target" not in out and "instances for the peak" not in out


def test_in_process_a_streaming_plan_prices_a_million_tokens_at_its_knee(tmp_path: Path) -> None:
    code, out, err = in_process(stream_ladder(tmp_path / "run"), peak_rps=20.0, instances=1,
                                instance_type="ml.g5.xlarge", as_json=True)
    assert code == 0, err
    data = json.loads(out)
    assert data["stream"]["knee_step"] == 3 and data["knee_step"] == 3  # load 8: 200 tokens/s, TTFT within 800 ms
    # 1 x $1.408/h / (200 tokens/s x 3600) x 10^6 per million output tokens
    assert data["stream"]["usd_per_million_output_tokens_at_knee"] == pytest.approx(G5 / (200.0 * 3600) * 1e6)
