"""`sme report` per endpoint kind, against hand-computed costs: serverless (GB-seconds from CloudWatch or the
load's latencies, data processed, provisioned concurrency), asynchronous (minutes at zero instances cost
nothing), and a streaming run's token charts on the shared time axis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import write_loadtest, write_watch  # noqa: E402

from sme.report.kind_cost import GB  # noqa: E402
from sme.report.kind_section import kind_cost  # noqa: E402
from sme.report.rundir import load_run  # noqa: E402
from sme.report.serverless_prices import ServerlessPricer  # noqa: E402

pytestmark = pytest.mark.timeout(60)
TABLE = ServerlessPricer(use_api=False)
SERVERLESS = {"variant": "AllTraffic", "memory_mb": 2048, "max_concurrency": 10, "provisioned_concurrency": 0}


def sme_report(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", "report", str(directory), "--prices", "table", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def edit_summary(directory: Path, **fields: object) -> None:
    path = directory / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(fields)
    path.write_text(json.dumps(summary))


def serverless_run(directory: Path, *, watch: bool = True, provisioned: int = 0) -> Path:
    """60 s at 10 req/s on a 2048 MB serverless endpoint; the watch sees 100 Invocations of 50 ms per 10 s."""
    write_loadtest(directory, [(60.0, 10.0)], slo_p99=None)
    edit_summary(directory, serverless=dict(SERVERLESS, provisioned_concurrency=provisioned),
                 bytes={"sent": 2 * GB, "received": GB})
    if watch:
        write_watch(directory / "watch.jsonl", 60.0, start_offset=0.0, load=[(60.0, 10.0)], scale_out_at=None,
                    subnets=False, model_latency_us=50_000.0, counts=lambda t: 0,
                    serverless={k: v for k, v in SERVERLESS.items() if k != "variant"})
    return directory


def test_serverless_cost_is_gb_seconds_from_cloudwatch_plus_data_processed(tmp_path: Path) -> None:
    run = serverless_run(tmp_path / "run")
    kc = kind_cost(load_run(run), "us-east-1", TABLE)
    # 6 samples x 100 Invocations x 0.05 s = 30 s of inference x 2 GB = 60 GB-s x $0.00002 = $0.0012;
    # 2 GB in + 1 GB out = 3 GB x $0.016 = $0.048; total $0.0492
    assert [(x.dimension, x.quantity) for x in kc.lines] == [
        ("compute", pytest.approx(60.0)), ("data processed in", 2.0), ("data processed out", 1.0)]
    assert kc.usd == pytest.approx(0.0492)
    assert "ModelLatency x Invocations" in kc.compute_from and "2026-11-27" in kc.source

    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    assert "run cost $0.049200 (serverless) from sme's price table" in done.stderr
    assert "instance type of AllTraffic unknown" not in done.stderr  # a serverless variant has none
    html = (run / "report.html").read_text()
    assert "Cost (serverless, 2048 MB)" in html and "GB-second" in html and "$0.049200" in html


def test_serverless_without_a_watch_uses_the_loads_latency_for_requests_taken_in(tmp_path: Path) -> None:
    run = serverless_run(tmp_path / "run", watch=False)
    edit_summary(run, failures=60, bytes=None,
                 errors=[{"kind": "status", "code": "400", "error_code": "ThrottlingException", "count": 50},
                         {"kind": "exception", "code": "ConnectionError", "count": 10}])
    kc = kind_cost(load_run(run), "us-east-1", TABLE)
    # (600 - 50 throttled - 10 unanswered) x 9 ms mean = 4.86 s x 2 GB = 9.72 GB-s x $0.00002 = $0.0001944
    assert [x.dimension for x in kc.lines] == ["compute"]
    assert kc.lines[0].quantity == pytest.approx(9.72) and kc.usd == pytest.approx(0.0001944)
    assert "540 requests taken in" in kc.compute_from and "upper bound" in kc.compute_from
    assert any("data processed is not in the cost" in n for n in kc.notes)


def test_provisioned_concurrency_without_a_rate_makes_the_cost_unknown_not_guessed(tmp_path: Path) -> None:
    run = serverless_run(tmp_path / "run", provisioned=2)
    kc = kind_cost(load_run(run), "us-east-1", TABLE)
    assert kc.usd is None and kc.provisioned_usd_per_hour is None  # the table has no provisioned rates
    assert any("no rate for serverless provisioned concurrency" in n for n in kc.notes)
    by = {x.dimension: x.quantity for x in kc.lines}
    # kept for the watch's 9 samples (0 to 80 s) x 10 s = 90 s: 2 x 2 GB x 90 s = 360 GB-s
    assert by["provisioned concurrency"] == pytest.approx(360.0)
    done = sme_report(run)
    assert done.returncode == 0 and "run cost unknown (serverless)" in done.stderr, done.stderr


def test_async_minutes_at_zero_instances_cost_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_loadtest(run, [(80.0, 5.0)], slo_p99=None)
    edit_summary(run, **{"async": {"succeeded": 400, "failed": 0, "pending": 0}})
    write_watch(run / "watch.jsonl", 80.0, start_offset=0.0, load=[(80.0, 5.0)], scale_out_at=None, subnets=False,
                counts=lambda t: 1 if t < 30 else 0 if t < 70 else 2, instance_type="ml.m5.large")
    kc = kind_cost(load_run(run), "us-east-1", TABLE)
    assert kc.kind == "async" and kc.minutes_at_zero == {"AllTraffic": pytest.approx(40 / 60)}
    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    # samples every 10 s from 0 to 100: 3 at 1 instance, 4 at 0, 4 at 2 = 11 instance x 10 s = 1.8333
    # instance-minutes x $0.115/h / 60 = $0.003514
    assert "run cost $0.0035 from sme's price table" in done.stderr
    html = (run / "report.html").read_text()
    assert "minutes at zero instances cost nothing" in html and "AllTraffic: 0.7 min" in html


def ladder_stream(rate: float) -> tuple[float, float, float, float, float]:
    return 100.0, (300.0 if rate <= 8 else 1500.0), 20.0, (40.0 if rate <= 8 else 90.0), rate * 25


def test_streaming_report_draws_ttft_itl_and_tokens_per_second_on_the_time_axis(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_loadtest(run, [(30.0, 2.0), (30.0, 16.0)], stream=ladder_stream, slo_p99=None)
    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    html = (run / "report.html").read_text()
    assert 'data-chart="tokens_latency"' in html and 'data-chart="tokens_rate"' in html
    assert "TTFT p99" in html and "ITL p99" in html and "output tokens/s" in html
    assert 'data-card="TTFT p99"' in html and "1,500.0 ms" in html  # the run's worst, from summary.json
    # tokens per second: 50 then 400 (2 and 16 x 25): the chart's y axis reaches 400
    from sme.report.timeline import build

    chart = next(c for c in build(load_run(run)).charts if c.key == "tokens_rate")
    assert {y for _, y in chart.series[0].points} == {50.0, 400.0}


def test_a_run_that_did_not_stream_has_no_token_charts_and_does_not_list_them_as_missing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_loadtest(run, [(30.0, 2.0)], slo_p99=None)
    assert sme_report(run).returncode == 0
    html = (run / "report.html").read_text()
    assert "tokens" not in html.lower()
