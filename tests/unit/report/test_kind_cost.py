"""Cost per endpoint kind, checked against costs computed by hand."""

from __future__ import annotations

import pytest

from sme.report.kind_cost import (GB, ServerlessRates, ServerlessUsage, instance_cost, provisioned_per_hour,
                                  serverless_cost, table_rates, total)
from sme.report.pricing import load_table

RATES = ServerlessRates(compute_per_gb_second=0.00002, data_in_per_gb=0.016, data_out_per_gb=0.016,
                        provisioned_per_gb_second=0.000005, provisioned_compute_per_gb_second=0.000012)


def test_on_demand_serverless_is_memory_times_duration_plus_data_processed():
    # 2048 MB for 1,500 s of inference = 3,000 GB-s x $0.00002 = $0.06; 0.5 GB in x $0.016 = $0.008;
    # 0.25 GB out x $0.016 = $0.004; total $0.072
    lines = serverless_cost(ServerlessUsage(2048, 1500.0, GB // 2, GB // 4), RATES)
    assert [(line.dimension, line.quantity) for line in lines] == [
        ("compute", 3000.0), ("data processed in", 0.5), ("data processed out", 0.25)]
    assert [line.usd for line in lines] == pytest.approx([0.06, 0.008, 0.004])
    assert total(lines) == pytest.approx(0.072)


def test_provisioned_concurrency_is_paid_while_configured_and_its_inference_at_its_own_rate():
    # 2 x 4 GB kept for one hour = 28,800 GB-s x $0.000005 = $0.144; its 600 s of inference at 4 GB =
    # 2,400 GB-s x $0.000012 = $0.0288; 100 s spilled over on demand = 400 GB-s x $0.00002 = $0.008
    usage = ServerlessUsage(4096, 100.0, 0, 0, provisioned_concurrency=2, provisioned_seconds=3600.0,
                            provisioned_inference_seconds=600.0)
    lines = {line.dimension: line.usd for line in serverless_cost(usage, RATES)}
    assert lines["provisioned concurrency"] == pytest.approx(0.144)
    assert lines["provisioned concurrency compute"] == pytest.approx(0.0288)
    assert lines["compute"] == pytest.approx(0.008)
    assert provisioned_per_hour(4096, 2, RATES) == pytest.approx(0.144)


def test_an_asynchronous_endpoint_at_zero_instances_costs_nothing_for_that_time():
    # 30 min at 2 instances + 90 min at 0 + 15 min at 1 = 1.25 instance-hours x $0.23 = $0.2875
    line = instance_cost([(30, 2), (90, 0), (15, 1)], 0.23)
    assert (line.quantity, line.unit) == (1.25, "instance-hour") and line.usd == pytest.approx(0.2875)


def test_a_rate_the_table_lacks_makes_the_cost_unknown_not_zero():
    rates = table_rates(load_table(), "us-east-1")
    assert rates.compute_per_gb_second == 0.00002 and rates.provisioned_per_gb_second is None
    assert "sme's price table (2026-11-27" in rates.source
    usage = ServerlessUsage(1024, 10.0, 0, 0, provisioned_concurrency=1, provisioned_seconds=60.0)
    assert total(serverless_cost(usage, rates)) is None
    assert provisioned_per_hour(1024, 1, rates) is None
    assert total(serverless_cost(ServerlessUsage(1024, 10.0, 0, 0), rates)) == pytest.approx(0.0002)
    elsewhere = table_rates(load_table(), "eu-west-1")
    assert "us-east-1 rates for eu-west-1" in elsewhere.source, "a borrowed region's rate says so"
