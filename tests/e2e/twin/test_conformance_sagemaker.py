"""SageMaker's Describe calls on the twin, as sagemaker-core (strict pydantic models), botocore and the AWS CLI
read them. Each test names the AWS behaviour (DescribeEndpoint, DescribeEndpointConfig, DescribeModel API
references) it checks."""

from __future__ import annotations

import json

import pytest

from tests.e2e.twin.conftest import IMAGE


@pytest.fixture
def sagemaker_core(twin, monkeypatch):
    """sagemaker-core finds the twin the way a user's shell does: from the environment."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, twin.env[key])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    from sagemaker.core import resources

    return resources


def test_sagemaker_core_reads_the_endpoint_its_config_and_lists_them(sagemaker_core, twin):
    endpoint = sagemaker_core.Endpoint.get(twin.endpoint, region="us-east-1")
    assert endpoint.endpoint_status == "InService" and endpoint.endpoint_config_name == twin.endpoint
    config = sagemaker_core.EndpointConfig.get(twin.endpoint, region="us-east-1")
    assert config.production_variants[0].instance_type == "ml.m5.large"
    assert twin.endpoint in [e.endpoint_name for e in sagemaker_core.Endpoint.get_all(region="us-east-1")]
    assert twin.endpoint in [c.endpoint_config_name for c in sagemaker_core.EndpointConfig.get_all(region="us-east-1")]
    assert endpoint.refresh().endpoint_status == "InService"


def test_describe_omits_data_capture_config_when_nothing_is_captured(twin):
    sm = twin.client("sagemaker")
    assert "DataCaptureConfig" not in sm.describe_endpoint(EndpointName=twin.endpoint)
    assert "DataCaptureConfig" not in sm.describe_endpoint_config(EndpointConfigName=twin.endpoint)


def test_describe_endpoint_summarises_data_capture_when_a_config_captures(twin):
    sm = twin.client("sagemaker")
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": "s3://capture/here",
               "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
    sm.create_endpoint_config(EndpointConfigName="captured", DataCaptureConfig=capture, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": twin.endpoint, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    try:
        assert sm.describe_endpoint_config(EndpointConfigName="captured")["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
        sm.create_endpoint(EndpointName="captured", EndpointConfigName="captured")
        summary = sm.describe_endpoint(EndpointName="captured")["DataCaptureConfig"]
        assert summary == {"EnableCapture": True, "CaptureStatus": "Started", "CurrentSamplingPercentage": 20,
                           "DestinationS3Uri": "s3://capture/here"}
    finally:
        sm.delete_endpoint(EndpointName="captured")
        sm.delete_endpoint_config(EndpointConfigName="captured")


def test_describe_endpoint_lists_each_variants_deployed_images(twin):
    variant = twin.client("sagemaker").describe_endpoint(EndpointName=twin.endpoint)["ProductionVariants"][0]
    (image,) = variant["DeployedImages"]
    assert image["SpecifiedImage"] == IMAGE
    repository = IMAGE.rsplit(":", 1)[0]
    assert image["ResolvedImage"].startswith(f"{repository}@sha256:") and len(image["ResolvedImage"]) == len(repository) + 72
    assert image["ResolutionTime"] is not None


def test_describe_model_omits_containers_beside_a_primary_container(twin):
    result = twin.aws("sagemaker", "describe-model", "--model-name", twin.endpoint)
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert "Containers" not in model and "VpcConfig" not in model, model
