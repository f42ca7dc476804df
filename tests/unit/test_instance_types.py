"""Instance types sme knows, and the share of this machine a local instance of each gets."""

from sme import instance_types


def test_the_table_has_a_source_a_date_and_the_types_sme_prices():
    import json
    from importlib import resources

    prices = json.loads(resources.files("sme.data").joinpath("prices.json").read_text())
    priced = set(prices["regions"]["us-east-1"])
    assert priced <= set(instance_types.names()), priced - set(instance_types.names())
    assert instance_types.table()["date"] and "aws.amazon.com" in instance_types.table()["source"]
    assert instance_types.known("ml.m5.xlarge").vcpus == 4 and instance_types.known("ml.c5.larg") is None


def test_a_type_gets_one_core_per_two_vcpus_capped_at_the_machine_and_a_worker_per_vcpu():
    large = instance_types.local_share("ml.c5.large", [0, 1])
    xlarge = instance_types.local_share("ml.m5.xlarge", [0, 1])
    big = instance_types.local_share("ml.m5.4xlarge", [0, 1])
    assert (large.cores, large.workers, large.capped) == ((0,), 2, False)
    assert (xlarge.cores, xlarge.workers, xlarge.capped) == ((0, 1), 4, False)
    assert big.cores == (0, 1) and big.capped and big.workers == 16
    assert instance_types.local_share("ml.c5.large", [0, 1], first=1).cores == (1,), "instances rotate over cores"
