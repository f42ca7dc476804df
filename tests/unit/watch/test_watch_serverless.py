"""`sme watch` on a serverless endpoint reads what SageMaker publishes for one: its serverless metrics, and no
instance metrics (a serverless variant has no instances)."""

from __future__ import annotations

from sme.watch.metrics import parse_metric_specs, serverless_specs


def test_a_serverless_endpoint_is_watched_for_its_serverless_metrics_and_none_of_an_instance():
    names = [m.name for m in serverless_specs(parse_metric_specs(()), provisioned=False)]
    assert "ModelSetupTime" in names and "ServerlessConcurrentExecutionsUtilization" in names
    assert not {"CPUUtilization", "InvocationsPerInstance", "GPUUtilization"} & set(names)
    assert not [n for n in names if "Provisioned" in n], "no provisioned concurrency, none of its metrics"
    with_pc = serverless_specs(parse_metric_specs(()), provisioned=True)
    assert {m.key for m in with_pc} >= {"ServerlessProvisionedConcurrencyExecutions",
                                         "ServerlessProvisionedConcurrencyUtilization",
                                         "ServerlessProvisionedConcurrencyInvocations",
                                         "ServerlessProvisionedConcurrencySpilloverInvocations"}


def test_the_serverless_metrics_can_be_asked_for_by_name_with_a_statistic():
    [spec] = parse_metric_specs(["ServerlessConcurrentExecutionsUtilization:Maximum"])
    assert (spec.namespace, spec.stat, spec.key) == ("AWS/SageMaker", "Maximum",
                                                      "ServerlessConcurrentExecutionsUtilization:Maximum")


def test_a_sample_records_the_serverless_variants_settings_that_price_the_run():
    from datetime import datetime, timezone

    import botocore.session
    from botocore.stub import Stubber

    from sme.watch.retry import Retrier
    from sme.watch.sample import Sampler, Target

    sagemaker = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    config = {"MemorySizeInMB": 2048, "MaxConcurrency": 10, "ProvisionedConcurrency": 2}
    with Stubber(sagemaker) as sm:
        sm.add_response("describe_endpoint", {
            "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
            "EndpointConfigName": "churn-config-1", "EndpointStatus": "InService", "CreationTime": now,
            "LastModifiedTime": now, "ProductionVariants": [{"VariantName": "AllTraffic",
                                                              "CurrentServerlessConfig": config}]},
            {"EndpointName": "churn"})
        sm.add_response("describe_endpoint_config", {
            "EndpointConfigName": "churn-config-1", "CreationTime": now,
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/churn-config-1",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "ServerlessConfig": config}]},
            {"EndpointConfigName": "churn-config-1"})
        sampler = Sampler({"sagemaker": sagemaker}.__getitem__, Target("churn", ("AllTraffic",), serverless=config),
                          (), 60.0, Retrier(lambda: 0.0, lambda s: None), lambda: 1_790_000_000.0, events_since=0.0)
        record = sampler.take(0, 1_790_000_000.0, 60.0)
    assert record["errors"] == []
    [variant] = record["variants"]
    assert variant["serverless"] == {"memory_mb": 2048, "max_concurrency": 10, "provisioned_concurrency": 2}
    assert "instance_type" not in variant
