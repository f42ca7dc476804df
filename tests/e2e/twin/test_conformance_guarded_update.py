"""UpdateEndpoint with a BlueGreenUpdatePolicy on the twin, as botocore reads DescribeEndpoint during and after it.

AWS behaviour checked (DescribeEndpoint API reference; SageMaker developer guide, "Use canary traffic shifting"):
while Updating, EndpointConfigName and ProductionVariants are still the old config's and PendingDeploymentSummary
carries the new config, its variants' VariantStatus going Creating -> Baking; afterwards the endpoint is InService
on the new config with no PendingDeploymentSummary and LastDeploymentConfig as sent. Every member of each reply
is one botocore's service model declares.
"""

from __future__ import annotations

import time

from tests.e2e.twin.conftest import ENDPOINT

NAME = "guarded"
DEPLOYMENT = {"BlueGreenUpdatePolicy": {
    "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                                    "WaitIntervalInSeconds": 2},
    "TerminationWaitInSeconds": 0, "MaximumExecutionTimeoutInSeconds": 600}}


def undeclared(value, shape, path="") -> list[str]:
    """Members of a parsed reply that the service model's shape does not declare."""
    if shape.type_name == "structure":
        out = [f"{path}.{k}" for k in value if k not in shape.members]
        for k, v in value.items():
            if k in shape.members:
                out += undeclared(v, shape.members[k], f"{path}.{k}")
        return out
    if shape.type_name == "list":
        return [x for i, item in enumerate(value) for x in undeclared(item, shape.member, f"{path}[{i}]")]
    return []


def test_describe_endpoint_during_and_after_a_canary_update_reads_as_aws_answers(twin):
    sm = twin.client("sagemaker")
    output = sm.meta.service_model.operation_model("DescribeEndpoint").output_shape
    for config in ("guarded-1", "guarded-2"):
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": ENDPOINT, "InitialInstanceCount": 2,
            "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=NAME, EndpointConfigName="guarded-1")
    waiter = {"Delay": 0.2, "MaxAttempts": 600}
    sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig=waiter)
    try:
        sm.update_endpoint(EndpointName=NAME, EndpointConfigName="guarded-2", DeploymentConfig=DEPLOYMENT)
        seen, replies = [], []
        deadline = time.time() + 120
        while True:
            reply = sm.describe_endpoint(EndpointName=NAME)
            replies.append(reply)
            if reply["EndpointStatus"] != "Updating":
                break
            assert reply["EndpointConfigName"] == "guarded-1", "the old config until the update is done"
            pending = reply["PendingDeploymentSummary"]
            assert pending["EndpointConfigName"] == "guarded-2"
            [variant] = pending["ProductionVariants"]
            assert variant["DeployedImages"][0]["SpecifiedImage"], variant
            status = variant["VariantStatus"][0]
            if not seen or seen[-1] != (status["Status"], status["StartTime"]):
                seen.append((status["Status"], status["StartTime"]))
            assert time.time() < deadline, f"still Updating after 2 minutes: {seen}"
            time.sleep(0.2)
        done = replies[-1]
        assert done["EndpointStatus"] == "InService" and done["EndpointConfigName"] == "guarded-2", done
        assert "PendingDeploymentSummary" not in done and "FailureReason" not in done
        assert done["LastDeploymentConfig"] == DEPLOYMENT
        assert [s for s, _ in seen] == ["Creating", "Baking", "Baking"], seen  # the canary, then all traffic
        assert seen[2][1] > seen[1][1], "each traffic shift's baking period has its own StartTime"
        assert [x for r in replies for x in undeclared(r, output) if not x.startswith(".ResponseMetadata")] == []
    finally:
        sm.delete_endpoint(EndpointName=NAME)
        for config in ("guarded-1", "guarded-2"):
            sm.delete_endpoint_config(EndpointConfigName=config)
