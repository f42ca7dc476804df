"""Changes to moto, one module per AWS service, each naming the AWS behaviour it reproduces.

    sagemaker          UpdateEndpoint, endpoint status transitions, failures and silent rollbacks
    sagemaker_runtime  InvokeEndpoint answered by real model runtimes, errors as AWS shapes them (``LocalAws``)
    cloudwatch         percentiles, period boundaries, exact dimensions, ListMetrics without repeats
    autoscaling        scaling activities, as Application Auto Scaling reports them; target tracking's alarms
    ec2                SageMaker's network interfaces: requester-managed and in use (used by the fleet)
    service_quotas     SageMaker's "<instance type> for endpoint usage" quotas
    apigateway         binaryMediaTypes kept on REST APIs

They reach into moto's internals: the moto minor version is pinned in pyproject.toml.
"""

from __future__ import annotations


def install_all() -> None:
    """Patch moto in this process (idempotent). InvokeEndpoint forwarding is installed per ``LocalAws``."""
    from sme.local.aws.patches import apigateway, autoscaling, cloudwatch, sagemaker, service_quotas

    sagemaker.install()
    cloudwatch.install()
    service_quotas.install()
    autoscaling.install()
    apigateway.install()
