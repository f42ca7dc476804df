"""The planner is pure: in-memory Desired and Observed in, a Plan out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sme.config import Experiment, ModelConfig, NetworkConfig, VariantConfig
from sme.core.models import EndpointView, Observed
from sme.core.planner import plan_deploy
from sme.core.resolve import resolve

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def experiment(count=2, data="s3://bucket/model.tar.gz", role="arn:aws:iam::123456789012:role/R", **kw):
    return Experiment(
        name="churn",
        model=ModelConfig(image=IMAGE, model_data=data, role=role),
        variants=(VariantConfig("AllTraffic", "ml.m5.large", count, 1.0),),
        network=NetworkConfig(("subnet-0a1b2c3d",), ("sg-0a1b2c3d",)),
        **kw,
    )


def desired(**kw):
    return resolve(experiment(**kw), "us-east-1", "123456789012")


def live(d, status="InService", config=None, reason=None):
    return Observed(model_exists=True, config_exists=True,
                    endpoint=EndpointView("churn", status, config or d.config.name, reason))


def ops(plan):
    return [s.op for s in plan.steps]


def test_new_endpoint_is_created_and_waited_for():
    d = desired()
    assert ops(plan_deploy(d, Observed())) == ["create_model", "create_endpoint_config", "create_endpoint",
                                               "wait_endpoint"]


def test_unchanged_spec_plans_nothing():
    d = desired()
    plan = plan_deploy(d, live(d))
    assert plan.empty and plan.changes == ()


def test_names_are_content_addressed():
    a, b = desired(count=2), desired(count=3)
    assert a.model.name == b.model.name, "instance count is not part of the model"
    assert a.config.name != b.config.name
    assert desired(data="s3://bucket/other.tar.gz").model.name != a.model.name
    assert desired().config.name == a.config.name, "names must be stable across runs"


def test_changed_count_updates_with_new_config_only():
    old, new = desired(count=2), desired(count=3)
    observed = Observed(model_exists=True, config_exists=False,
                        endpoint=EndpointView("churn", "InService", old.config.name))
    plan = plan_deploy(new, observed)
    assert ops(plan) == ["create_endpoint_config", "update_endpoint", "wait_endpoint"]
    assert plan.steps[1].why == f"{old.config.name} -> {new.config.name}"


def test_failed_endpoint_is_recreated_with_a_note():
    d = desired()
    plan = plan_deploy(d, live(d, status="Failed", reason="ping failed"))
    assert ops(plan) == ["delete_endpoint", "wait_endpoint_deleted", "create_endpoint", "wait_endpoint"]
    assert any("ping failed" in note for note in plan.notes)


@pytest.mark.parametrize("status", ["Creating", "Updating"])
def test_in_progress_on_the_same_config_only_waits(status):
    d = desired()
    plan = plan_deploy(d, live(d, status=status))
    assert ops(plan) == ["wait_endpoint"] and plan.changes == ()


def test_in_progress_on_another_config_waits_then_updates():
    d = desired()
    plan = plan_deploy(d, live(d, status="Updating", config="churn-config-00000000"))
    assert ops(plan) == ["wait_endpoint", "update_endpoint", "wait_endpoint"]


def test_local_artifact_is_uploaded_once(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"abc")
    d = desired(data=str(model))
    assert d.artifact is not None and d.model.model_data_url == d.artifact.url
    assert d.artifact.key.startswith("churn/model-ba7816bf8f01cfea")  # sha256("abc")
    first = plan_deploy(d, Observed())
    assert ops(first)[:2] == ["create_bucket", "upload_artifact"]
    again = plan_deploy(d, replace(live(d), bucket_exists=True, artifact_exists=True))
    assert again.empty


def test_role_create_plans_role_and_least_privilege_policy():
    import json

    d = desired(role="create")
    assert d.role.arn == "arn:aws:iam::123456789012:role/sme/sme-churn-sagemaker"
    policy = json.loads(d.role.policy)
    resources = {sid["Sid"]: sid["Resource"] for sid in policy["Statement"]}
    assert resources["ReadModelArtifact"] == ["arn:aws:s3:::bucket/model.tar.gz"]
    assert resources["PullImage"] == ["arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-xgboost"]
    assert "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a1b2c3d" in resources["EndpointSubnetsAndGroups"]
    enis = next(st for st in policy["Statement"] if st["Sid"] == "EndpointNetworkInterfaces")
    assert enis["Resource"] == ["arn:aws:ec2:us-east-1:123456789012:network-interface/*"]
    assert enis["Condition"] == {"ArnEquals": {"ec2:Subnet": ["arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a1b2c3d"]}}, \
        "network interfaces only in the experiment's subnets"
    assert ops(plan_deploy(d, Observed()))[:2] == ["create_role", "put_role_policy"]
    same = replace(live(d), role_exists=True, role_policy=d.role.policy)
    assert plan_deploy(d, same).empty


def test_names_of_an_unchanged_spec_never_change_across_sme_versions():
    """A new name means a new endpoint config and an UpdateEndpoint that replaces the fleet: an sme upgrade
    that adds an optional setting must not rename what is deployed (None fields stay out of the hash)."""
    d = desired()
    assert (d.model.name, d.config.name) == ("churn-model-596e6741", "churn-config-08af7ef2")
