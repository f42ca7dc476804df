"""Serverless and asynchronous endpoints from the experiment file: the real `sme` as a subprocess against the
moto server. The endpoint config carries ServerlessConfig / AsyncInferenceConfig exactly, an unchanged file
plans nothing, a changed setting is a new config and an UpdateEndpoint, and what SageMaker refuses is refused
before any call (exit 2, the field named)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_deploy import model_tar  # noqa: F401  (fixture)

FAST = ("--poll-interval", "0.05s", "--timeout", "60s")
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def experiment(tmp_path, model_tar, endpoint: str, extra: str = "") -> str:
    cfg = tmp_path / "sme.yaml"
    cfg.write_text(f"""
name: churn
region: us-east-1
model: {{image: {IMAGE}, model_data: {model_tar}, role: "arn:aws:iam::123456789012:role/SageMakerRole"}}
endpoint:
{endpoint}
{extra}""")
    return str(cfg)


SERVERLESS = """  variants:
    - name: AllTraffic
      serverless: {memory_mb: 2048, max_concurrency: 10, provisioned_concurrency: 2}"""
ASYNC = """  variants: [{instance_type: ml.m5.large, count: 1}]
  async:
    output: s3://results-bucket/churn/out/
    failure: s3://results-bucket/churn/failed/
    max_concurrent_per_instance: 4
    notify: {success: "arn:aws:sns:us-east-1:123456789012:done", error: "arn:aws:sns:us-east-1:123456789012:failed"}"""


def live_config(boto):
    sm = boto("sagemaker")
    return sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName="churn")["EndpointConfigName"])


def test_a_serverless_endpoint_deploys_redeploys_nothing_updates_and_tears_down(sme, vpc, model_tar, boto, moto,
                                                                                tmp_path):
    cfg = experiment(tmp_path, model_tar, SERVERLESS)
    first = sme("deploy", "-c", cfg, *FAST)
    assert first.returncode == 0, first.stderr
    [variant] = live_config(boto)["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 10, "ProvisionedConcurrency": 2}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    status = json.loads(sme("status", "--name", "churn", "--json").stdout)
    assert status["kind"] == "serverless" and status["variants"][0]["serverless"]["MemorySizeInMB"] == 2048
    assert "serverless 2048 MB, up to 10 at once, 2 provisioned" in sme("status", "--name", "churn").stdout

    moto.recorder.calls.clear()
    again = sme("deploy", "-c", cfg, *FAST)
    assert again.returncode == 0 and moto.recorder.mutating() == [], moto.recorder.mutating()

    bigger = experiment(tmp_path, model_tar, SERVERLESS.replace("memory_mb: 2048", "memory_mb: 4096"))
    moto.recorder.calls.clear()
    assert sme("deploy", "-c", bigger, *FAST).returncode == 0
    assert [c.operation for c in moto.recorder.mutating()] == ["CreateEndpointConfig", "UpdateEndpoint"]
    assert live_config(boto)["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 4096

    down = sme("teardown", "--name", "churn")
    assert down.returncode == 0, down.stderr
    sm = boto("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_preflight_holds_a_serverless_endpoint_to_the_accounts_serverless_quotas(sme, vpc, model_tar, boto, moto,
                                                                                 tmp_path):
    """MaxConcurrency of all the account's serverless endpoints together is one quota (AWS documents 200; some
    accounts have 10): preflight counts what the other serverless endpoints hold, and stops before any call."""
    from sme.local.aws.patches.service_quotas import QUOTAS, SERVERLESS_CONCURRENCY

    sm = boto("sagemaker")
    sm.create_model(ModelName="other", ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://elsewhere/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="other", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "other",
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 6}}])
    sm.create_endpoint(EndpointName="other", EndpointConfigName="other")
    cfg = experiment(tmp_path, model_tar, SERVERLESS)
    QUOTAS[("us-east-1", SERVERLESS_CONCURRENCY)] = 15
    try:
        moto.recorder.calls.clear()
        refused = sme("deploy", "-c", cfg, *FAST)
        assert refused.returncode == 6, refused.stderr
        text = " ".join(refused.stderr.split())
        assert "need 10 (MaxConcurrency 10)" in text and "6 held by other serverless endpoints, 9 free" in text
        assert "lower max_concurrency to 9" in text and "at least 16" in text
        assert moto.recorder.mutating() == []
        QUOTAS[("us-east-1", SERVERLESS_CONCURRENCY)] = 16
        ok = sme("preflight", "-c", cfg)
        assert ok.returncode == 0, ok.stderr + ok.stdout
        assert "0 to spare" in " ".join(ok.stdout.split())
    finally:
        QUOTAS.clear()


def test_an_async_endpoint_carries_its_config_and_teardown_leaves_the_results(sme, vpc, model_tar, boto, moto,
                                                                           tmp_path):
    cfg = experiment(tmp_path, model_tar, ASYNC)
    assert sme("deploy", "-c", cfg, *FAST).returncode == 0
    assert live_config(boto)["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": "s3://results-bucket/churn/out/",
                         "S3FailurePath": "s3://results-bucket/churn/failed/",
                         "NotificationConfig": {"SuccessTopic": "arn:aws:sns:us-east-1:123456789012:done",
                                                "ErrorTopic": "arn:aws:sns:us-east-1:123456789012:failed"}},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}}
    assert json.loads(sme("status", "--name", "churn", "--json").stdout)["async_output"] == \
        "s3://results-bucket/churn/out/"
    moto.recorder.calls.clear()
    assert sme("deploy", "-c", cfg, *FAST).returncode == 0 and moto.recorder.mutating() == []

    wider = experiment(tmp_path, model_tar, ASYNC.replace("max_concurrent_per_instance: 4",
                                                          "max_concurrent_per_instance: 8"))
    moto.recorder.calls.clear()
    changed = sme("deploy", "-c", wider, *FAST)
    assert changed.returncode == 0, changed.stderr
    assert [c.operation for c in moto.recorder.mutating()] == ["CreateEndpointConfig", "UpdateEndpoint"]
    assert live_config(boto)["AsyncInferenceConfig"]["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 8}
    down = sme("teardown", "--name", "churn")
    assert down.returncode == 0, down.stderr
    assert "async results under s3://results-bucket/churn/out/ are yours: teardown leaves them" in down.stderr


@pytest.mark.parametrize("endpoint, extra, field", [
    (SERVERLESS.replace("2048", "1500"), "", "memory_mb"),
    (SERVERLESS.replace("2048", "7168"), "", "memory_mb"),
    (SERVERLESS.replace("max_concurrency: 10", "max_concurrency: 201"), "", "max_concurrency"),
    (SERVERLESS.replace("max_concurrency: 10", "max_concurrency: 0"), "", "max_concurrency"),
    (SERVERLESS.replace("provisioned_concurrency: 2", "provisioned_concurrency: 11"), "", "provisioned_concurrency"),
    (SERVERLESS, "network: {subnets: [subnet-0a1b2c3d], security_groups: [sg-0a1b2c3d]}", "network.subnets"),
    (SERVERLESS, "network: {network_isolation: true}", "network.network_isolation"),
    (SERVERLESS + "\n    - {name: B, instance_type: ml.m5.large}", "", "endpoint.variants"),
    (SERVERLESS.replace("- name: AllTraffic", "- name: AllTraffic\n      instance_type: ml.g5.xlarge"), "",
     "instance_type"),
    (SERVERLESS + "\n  async: {output: s3://results-bucket/out/}", "", "endpoint.async"),
    (SERVERLESS, "autoscaling: {max: 3}", "autoscaling"),
    (ASYNC.replace("s3://results-bucket/churn/out/", "https://results-bucket/out/"), "", "output"),
    (ASYNC.replace("s3://results-bucket/churn/failed/", "/tmp/failed/"), "", "failure"),
    (ASYNC.replace("arn:aws:sns:us-east-1:123456789012:done", "done-topic"), "", "success"),
    ("  variants: [{name: A}]", "", "instance_type"),
])
def test_what_sagemaker_refuses_exits_2_with_the_field_named_and_nothing_sent(sme, vpc, model_tar, moto, tmp_path,
                                                                             endpoint, extra, field):
    cfg = experiment(tmp_path, model_tar, endpoint, extra)
    moto.recorder.calls.clear()
    result = sme("deploy", "-c", cfg, *FAST)
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert list(moto.recorder.calls) == [], "bad input must not reach AWS"
