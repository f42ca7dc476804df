"""The executor with spec'd mock clients, and RemoteState's AWS calls with botocore's Stubber."""

from __future__ import annotations

from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber

from sme.aws import AwsContext
from sme.console import Env
from sme.core.executor import ExecContext, Executor
from sme.core.models import Observed
from sme.core.observe import RemoteState
from sme.core.planner import plan_deploy
from sme.core.resources import HANDLERS
from sme.state import DeployState, load_state
from tests.unit.core.test_planner import desired


class FakeAws(AwsContext):
    def __init__(self, clients):
        super().__init__(region="us-east-1")
        self._clients = clients


def sagemaker_mock():
    client = mock.Mock(spec=boto3.client("sagemaker", region_name="us-east-1"))
    client.create_model.return_value = {"ModelArn": "arn:model"}
    client.create_endpoint_config.return_value = {"EndpointConfigArn": "arn:config"}
    client.create_endpoint.return_value = {"EndpointArn": "arn:endpoint"}
    return client


def test_executor_records_each_resource_as_it_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path))
    sm = sagemaker_mock()
    d = desired()
    recorded_before_endpoint = []
    sm.create_endpoint.side_effect = lambda **kw: (
        recorded_before_endpoint.extend(r.kind for r in load_state("churn").resources) or {"EndpointArn": "arn:e"})
    plan = plan_deploy(d, Observed())
    plan = type(plan)(tuple(s for s in plan.steps if s.op != "wait_endpoint"))
    ctx = ExecContext(aws=FakeAws({"sagemaker": sm}), state=DeployState("churn"), env=Env(), desired=d)
    Executor(ctx, HANDLERS).execute(plan)
    assert recorded_before_endpoint == ["model", "endpoint-config"], "model and config must be saved before the next call"
    state = load_state("churn")
    assert [r.kind for r in state.resources] == ["model", "endpoint-config", "endpoint"]
    assert state.endpoint_configs[-1]["name"] == d.config.name
    kwargs = sm.create_model.call_args.kwargs
    assert kwargs["VpcConfig"] == {"Subnets": ["subnet-0a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]}
    assert {"Key": "sme:experiment", "Value": "churn"} in kwargs["Tags"]
    assert (tmp_path / "churn.json").stat().st_mode & 0o777 == 0o600


def test_a_failed_create_keeps_what_was_already_recorded(tmp_path, monkeypatch):
    from sme.errors import AwsError
    from botocore.exceptions import ClientError

    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path))
    sm = sagemaker_mock()
    sm.create_endpoint_config.side_effect = ClientError(
        {"Error": {"Code": "ResourceLimitExceeded", "Message": "quota"}}, "CreateEndpointConfig")
    d = desired()
    ctx = ExecContext(aws=FakeAws({"sagemaker": sm}), state=DeployState("churn"), env=Env(), desired=d)
    with pytest.raises(AwsError, match="CreateEndpointConfig on churn-config-.*ResourceLimitExceeded"):
        Executor(ctx, HANDLERS).execute(plan_deploy(d, Observed()))
    assert [r.name for r in load_state("churn").resources] == [d.model.name]


def test_role_propagation_delay_is_retried(tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path))
    sm = sagemaker_mock()
    sm.create_model.side_effect = [
        ClientError({"Error": {"Code": "ValidationException", "Message": "Could not assume role arn"}}, "CreateModel"),
        {"ModelArn": "arn:model"}]
    slept = []
    d = desired()
    step = plan_deploy(d, Observed()).steps[0]
    ctx = ExecContext(aws=FakeAws({"sagemaker": sm}), state=DeployState("churn"), env=Env(sleep=slept.append), desired=d)
    Executor(ctx, HANDLERS).execute(type(plan_deploy(d, Observed()))((step,)))
    assert slept == [1] and sm.create_model.call_count == 2


def test_remote_state_reads_with_the_exact_calls():
    d = desired()
    sm = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sm) as stub:
        stub.add_response("describe_model", {"ModelName": d.model.name, "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x",
                                             "CreationTime": "2026-01-01"}, {"ModelName": d.model.name})
        stub.add_client_error("describe_endpoint_config", "ValidationException",
                              "Could not find endpoint configuration", expected_params={"EndpointConfigName": d.config.name})
        stub.add_response("describe_endpoint", {
            "EndpointName": "churn", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn",
            "EndpointConfigName": "churn-config-old", "EndpointStatus": "InService", "CreationTime": "2026-01-01",
            "LastModifiedTime": "2026-01-01",
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 2, "DesiredInstanceCount": 2}]},
            {"EndpointName": "churn"})
        aas = boto3.client("application-autoscaling", region_name="us-east-1")
        with Stubber(aas) as scaling:
            scaling.add_response("describe_scalable_targets", {"ScalableTargets": []}, {
                "ServiceNamespace": "sagemaker", "ResourceIds": ["endpoint/churn/variant/AllTraffic"],
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"})
            observed = RemoteState(FakeAws({"sagemaker": sm, "application-autoscaling": aas})).observe(d)
            scaling.assert_no_pending_responses()
        stub.assert_no_pending_responses()
    assert observed.model_exists and not observed.config_exists
    assert observed.endpoint.config_name == "churn-config-old"
    assert observed.endpoint.variants[0].current_instances == 2
    assert [s.op for s in plan_deploy(d, observed).steps] == ["create_endpoint_config", "update_endpoint", "wait_endpoint"]


def test_waiter_times_out_with_an_injected_clock():
    from sme.core.waiter import wait_for_endpoint
    from sme.errors import WaitTimeout

    now = [0.0]
    sm = mock.Mock(spec=boto3.client("sagemaker", region_name="us-east-1"))
    sm.describe_endpoint.return_value = {"EndpointName": "churn", "EndpointStatus": "Creating", "EndpointConfigName": "c"}
    env = Env(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    with pytest.raises(WaitTimeout, match="still Creating after 1m00s"):
        wait_for_endpoint(FakeAws({"sagemaker": sm}), env, "churn", "c", timeout=60, poll=15)
    assert sm.describe_endpoint.call_count == 5  # t = 0, 15, 30, 45, 60
