"""`sme report` for a deployed experiment: the latency chart's gateway layers and where the time went,
instance types from what `sme watch` recorded (and a type change named), and a truthful note about the
price source against a local AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.runs import write_watch

from sme.report import timeline
from sme.report.build import ReportOptions, instance_types, price_variants
from sme.report.pricing import Pricer
from sme.report.rundir import load_run


def with_front_door(path: Path, layers: list[dict[str, float | None]]) -> None:
    """Add a front door to each sample of a watch file (Latency etc. in ms, as CloudWatch gives them)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec, metrics in zip(records, layers):
        rec["front_door"] = {"api_name": "sme-churn", "function_name": "sme-churn-proxy", "metrics": metrics}
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_the_latency_chart_draws_the_gateway_layers_in_ms_on_one_axis(tmp_path: Path) -> None:
    run = tmp_path / "run"
    records = write_watch(run / "watch.jsonl", 10, interval=10, start_offset=0, scale_out_at=None)
    with_front_door(run / "watch.jsonl", [
        {"Count": 1000.0, "Latency": 12.0, "IntegrationLatency": 10.0, "Duration": 8.0, "Latency:p99": 40.0}]
        * len(records))
    chart = next(c for c in timeline.build(load_run(run)).charts if c.key == "latency")
    by_label = {s.label: s for s in chart.series}
    assert chart.unit == "ms" and chart.title.startswith("Latency by layer")
    assert [y for _, y in by_label["API Gateway Latency avg"].points] == [12.0] * len(records)
    assert [y for _, y in by_label["API Gateway Latency p99"].points] == [40.0] * len(records)
    assert [y for _, y in by_label["Lambda Duration avg"].points] == [8.0] * len(records)
    model = [y for _, y in by_label["ModelLatency avg"].points]
    assert model == pytest.approx([r["metrics"]["AllTraffic"]["ModelLatency"] / 1000 for r in records])
    labels = [s.label for s in chart.series]
    assert labels.index("API Gateway Latency avg") < labels.index("IntegrationLatency avg") \
        < labels.index("Lambda Duration avg") < labels.index("ModelLatency avg"), "outermost layer first"


def test_layer_means_weight_each_sample_by_its_requests(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_watch(run / "watch.jsonl", 10, interval=10, start_offset=0, scale_out_at=None)
    with_front_door(run / "watch.jsonl", [
        {"Count": 10.0, "Latency": 10.0},
        {"Count": 30.0, "Latency": 50.0},
        {"Count": None, "Latency": 900.0}])  # no requests counted: an idle window does not move the mean
    text = timeline.layer_means(load_run(run))
    assert "API Gateway 40.00 ms" in text, text  # (10*10 + 30*50) / 40
    assert "integration" not in text, "a layer without data is left out, not shown as 0"


def test_no_front_door_keeps_the_client_vs_cloudwatch_chart(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_watch(run / "watch.jsonl", 10, interval=10, start_offset=0, scale_out_at=None)
    chart = next(c for c in timeline.build(load_run(run)).charts if c.key == "latency")
    assert not any("API Gateway" in s.label for s in chart.series)
    assert "Averages over the watch" not in chart.caption


def test_the_recorded_instance_type_prices_the_run_and_a_change_is_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    records = write_watch(run / "watch.jsonl", 30, interval=10, start_offset=0, scale_out_at=None,
                          instance_type="ml.m5.large")
    records[-1]["variants"][0]["instance_type"] = "ml.c5.xlarge"  # an update moved it to another type
    (run / "watch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    loaded = load_run(run)
    assert instance_types(loaded, ()) == {"AllTraffic": "ml.m5.large"}
    notes: list[str] = []
    prices = price_variants(loaded, ReportOptions(run, use_pricing_api=False), Pricer(use_api=False), notes)
    assert prices["AllTraffic"].usd_per_hour == pytest.approx(0.115)
    assert any("ran on ml.m5.large then ml.c5.xlarge" in n for n in notes), notes
    assert not any("unknown" in n for n in notes), notes
    flagged: list[str] = []
    price_variants(loaded, ReportOptions(run, instance_types=("AllTraffic=ml.c5.xlarge",), use_pricing_api=False),
                   Pricer(use_api=False), flagged)
    assert not any("ran on" in n for n in flagged), "the user chose the type: nothing to warn about"


def test_a_watch_file_without_instance_types_says_why_the_cost_is_missing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_watch(run / "watch.jsonl", 10, interval=10, start_offset=0, scale_out_at=None)
    notes: list[str] = []
    price_variants(load_run(run), ReportOptions(run), Pricer(use_api=False), notes)
    assert any("instance type of AllTraffic unknown" in n and "--instance-type" in n for n in notes), notes


def test_a_local_aws_is_named_as_why_the_table_priced_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused():
        raise RuntimeError("no pricing here")

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    local = Pricer(client_factory=refused).price("ml.m5.large", "us-east-1")
    assert local.usd_per_hour == pytest.approx(0.115)
    assert "AWS_ENDPOINT_URL is a local AWS (http://127.0.0.1:4566), which has no Pricing API" in local.note
    assert "--prices table" not in local.note
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://proxy.example.com")
    remote = Pricer(client_factory=refused).price("ml.m5.large", "us-east-1")
    assert remote.note == "the AWS Pricing API did not answer (RuntimeError: no pricing here)"
    assert Pricer(use_api=False).price("ml.m5.large", "us-east-1").note == "--prices table was given"
