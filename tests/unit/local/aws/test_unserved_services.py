"""A service the twin has no backend for (the Pricing API, which `sme plan-capacity` and the report ask for
prices): botocore gets an error that names it (501 NotImplemented, as S3 answers what it does not
implement), and nothing is printed on the console the twin shares with the user (moto printed a line there
and answered a 500 HTML page)."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def test_a_service_the_twin_does_not_serve_gets_a_named_error_and_nothing_on_the_console(moto, capfd):
    capfd.readouterr()
    pricing = boto3.client("pricing", region_name="us-east-1", endpoint_url=moto.url, aws_access_key_id="testing",
                           aws_secret_access_key="testing", config=Config(retries={"max_attempts": 0}))
    with pytest.raises(ClientError) as err:
        pricing.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)
    answer = err.value.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert answer["Error"] == {"Code": "NotImplemented", "Message": "sme's local AWS does not serve the pricing API"}
    out, errs = capfd.readouterr()
    assert "Unable to find" not in out + errs and "amazonaws.com" not in out + errs
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    assert sm.list_endpoints()["Endpoints"] == [], "the services it serves still answer"
