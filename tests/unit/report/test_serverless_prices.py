"""Serverless rates from the AWS Pricing API (botocore Stubber: parameters checked against the service model),
with realistic Price List product documents, and the table when the API fails or has nothing."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.stub import Stubber

from sme.report.serverless_prices import ServerlessPricer, data_rate, serverless_rate


def product(sku: str, usage: str, usd: str, family: str = "ML Serverless", unit: str = "Second",
            operation: str = "RunInstance") -> str:
    """A Price List API product document as get_products returns it (a JSON string per product)."""
    term = f"{sku}.JRTCKXETXF"
    return json.dumps({
        "product": {"productFamily": family, "sku": sku,
                    "attributes": {"regionCode": "us-east-1", "servicecode": "AmazonSageMaker",
                                   "location": "US East (N. Virginia)", "locationType": "AWS Region",
                                   "usagetype": usage, "operation": operation, "servicename": "Amazon SageMaker"}},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {term: {
            "priceDimensions": {f"{term}.6YS6EN2CT7": {
                "unit": unit, "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "rateCode": f"{term}.6YS6EN2CT7", "description": f"${usd} per {unit} for {usage}",
                "pricePerUnit": {"USD": usd}}},
            "sku": sku, "effectiveDate": "2026-09-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}}}},
        "version": "20260901000000", "publicationDate": "2026-09-01T00:00:00Z"})


SERVERLESS_PAGE_1 = [product("PUE6HBQ8KFHBUN5T", "USE1-ServerlessInf:Mem-3GB", "0.0000600000"),
                     product("A1", "USE1-ServerlessInf:Mem-2GB", "0.0000400000")]
SERVERLESS_PAGE_2 = [product("B2", "USE1-ProvisionedConcurrency:Usage-2GB", "0.0000096000"),
                     product("C3", "USE1-ProvisionedConcurrency:Mem-2GB", "0.0000280000")]
DATA = [product("D4", "USE1-Data-Bytes-In", "0.0160000000", family="", unit="GB", operation="Invoke-Endpoint"),
        product("E5", "USE1-Data-Bytes-Out", "0.0160000000", family="", unit="GB", operation="Invoke-Endpoint")]


def filters(**terms: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def stubbed(replies: list[tuple[dict, dict]]):  # type: ignore[no-untyped-def]
    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    for reply, expected in replies:
        stub.add_response("get_products", reply, expected)
    stub.activate()
    return client, stub


def test_api_rates_per_gb_second_for_the_variants_memory_over_pages_with_data_processed() -> None:
    family = filters(regionCode="us-east-1", productFamily="ML Serverless")
    data = filters(regionCode="us-east-1", operation="Invoke-Endpoint")
    base = {"ServiceCode": "AmazonSageMaker", "MaxResults": 100}
    client, stub = stubbed([
        ({"PriceList": SERVERLESS_PAGE_1, "NextToken": "page2", "FormatVersion": "aws_v1"},
         {**base, "Filters": family}),
        ({"PriceList": SERVERLESS_PAGE_2, "FormatVersion": "aws_v1"}, {**base, "Filters": family, "NextToken": "page2"}),
        ({"PriceList": DATA, "FormatVersion": "aws_v1"}, {**base, "Filters": data})])
    rates = ServerlessPricer(client_factory=lambda: client).rates("us-east-1", 2048)
    stub.assert_no_pending_responses()
    # per second at 2 GB / 2: $0.00004/s -> $0.00002 per GB-s; $0.0000096/s -> $0.0000048; $0.000028/s -> $0.000014
    assert rates.compute_per_gb_second == pytest.approx(0.00002)
    assert rates.provisioned_per_gb_second == pytest.approx(0.0000048)
    assert rates.provisioned_compute_per_gb_second == pytest.approx(0.000014)
    assert (rates.data_in_per_gb, rates.data_out_per_gb) == (pytest.approx(0.016), pytest.approx(0.016))
    assert rates.source == "AWS Pricing API"


def test_rates_are_looked_up_once_per_region_and_memory() -> None:
    calls = []

    def factory():  # type: ignore[no-untyped-def]
        calls.append(1)
        client, _ = stubbed([({"PriceList": SERVERLESS_PAGE_1}, None), ({"PriceList": DATA}, None)])
        return client

    pricer = ServerlessPricer(client_factory=factory)
    first = pricer.rates("us-east-1", 3072)
    assert pricer.rates("us-east-1", 3072) is first and len(calls) == 1
    assert first.compute_per_gb_second == pytest.approx(0.00002)  # $0.00006/s at 3 GB
    # the API has no provisioned-concurrency product here: those rates come from the table, which has none
    assert first.provisioned_per_gb_second is None and first.source == "AWS Pricing API"


def test_api_failure_falls_back_to_the_dated_table_and_says_why() -> None:
    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_client_error("get_products", "AccessDeniedException", "not allowed")
    stub.activate()
    pricer = ServerlessPricer(client_factory=lambda: client)
    rates = pricer.rates("eu-west-1", 2048)
    assert rates.compute_per_gb_second == pytest.approx(0.00002)
    assert "2026-11-27" in rates.source and "AccessDeniedException" in rates.source
    assert "us-east-1 rates for eu-west-1" in rates.source
    assert pricer.api_error and pricer.rates("us-east-1", 1024).source.startswith("sme's price table")


def test_an_api_without_serverless_products_leaves_the_table_and_names_it() -> None:
    client, _ = stubbed([({"PriceList": []}, None), ({"PriceList": []}, None)])
    rates = ServerlessPricer(client_factory=lambda: client).rates("us-east-1", 1024)
    assert "had no serverless prices for us-east-1 at 1024 MB" in rates.source


def test_table_only_when_asked() -> None:
    rates = ServerlessPricer(use_api=False, client_factory=lambda: pytest.fail("no API call")).rates("us-east-1", 1024)
    assert rates.source.startswith("sme's price table (2026-11-27")


def test_product_readers_match_only_their_usage_types() -> None:
    assert serverless_rate(json.loads(SERVERLESS_PAGE_1[0]), 2048) is None  # 3 GB product, 2 GB variant
    assert serverless_rate(json.loads(product("X", "USE1-Host:ml.m5.large", "0.115")), 2048) is None
    assert data_rate(json.loads(DATA[1])) == ("data_out_per_gb", pytest.approx(0.016))
    assert data_rate(json.loads(SERVERLESS_PAGE_1[1])) is None
