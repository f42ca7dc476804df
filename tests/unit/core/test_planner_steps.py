"""Whole plans, step for step, against plans written out by hand: every step's kind, name, action, reason
and what it carries (what `sme deploy --dry-run` shows and what the executor is handed).

The other planner tests check the order of operations; these check each step in full, so a step that
names the wrong resource, carries the wrong spec or gives the wrong reason fails here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sme.config import VariantConfig
from sme.core import steps as s
from sme.core.models import EndpointView, GatewayView, Observed, ScalingView, VariantView
from sme.core.planner import plan_deploy, plan_summary
from sme.core.resolve import resolve
from sme.core.steps import Plan
from tests.unit.core.test_planner import desired, experiment, live

RID = "endpoint/churn/variant/AllTraffic"
POLICY = "sme-churn-AllTraffic-tracking"
UPDATE = {"strategy": "linear", "linear_step": 25, "wait": "2m", "alarms": "auto"}
GATEWAY_PARTS = (("gateway-role", "sme-churn-proxy"), ("log-group", "/aws/lambda/sme-churn-proxy"),
                 ("lambda", "sme-churn-proxy"), ("gateway-api", "a1"), ("usage-plan", "u1"), ("gateway-key", "k1"))


def endpoint(config: str, status: str = "InService", reason: str | None = None, variants=()) -> EndpointView:
    return EndpointView("churn", status, config, reason, variants)


def test_a_first_deploy_of_every_section_plans_each_step_in_full(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"\0" * 1_050_000)  # 1.05 MB: shown as 1.1
    d = desired(data=str(model), role="create", autoscaling={"min": 2, "max": 6}, update=UPDATE, gateway={})
    art, [spec], g = d.artifact, d.scaling, d.gateway
    five_xx, latency = d.update.alarms
    cfg = d.config.name
    assert plan_deploy(d, Observed()) == Plan((
        s.CreateBucket(name=art.bucket, why="artifact bucket missing", artifact=art),
        s.UploadArtifact(name=art.url, why=f"{model} (1.1 MB) not in S3 yet", artifact=art),
        s.CreateRole(name="sme-churn-sagemaker", why="role: create", role=d.role),
        s.PutRolePolicy(name="sme-churn-sagemaker/sme-least-privilege", why="new role", role=d.role),
        s.CreateModel(name=d.model.name, why="new model", model=d.model),
        s.CreateEndpointConfig(name=cfg, why="new endpoint config", config=d.config),
        s.CreateEndpoint(name="churn", why="new endpoint", config_name=cfg),
        s.WaitEndpoint(name="churn", why=f"until InService on {cfg}", config_name=cfg),
        s.RegisterScaling(name=RID, why="new scalable target: 2-6 instances", scaling=spec),
        s.PutScalingPolicy(name=POLICY, why="target tracking at 70", scaling=spec),
        # no update runs on a first deploy, but the alarms it would roll back on are made with it
        s.PutAlarm(name="sme-churn-AllTraffic-5xx", why="AllTraffic: 5+ 5XX errors in a minute; rolls back updates",
                   alarm=five_xx),
        s.PutAlarm(name="sme-churn-AllTraffic-latency",
                   why="AllTraffic: average model latency above 1000 ms; rolls back updates", alarm=latency),
        s.CreateGatewayRole(name="sme-churn-proxy", why="front door: may invoke only this endpoint", gateway=g),
        s.CreateGatewayLogGroup(name="/aws/lambda/sme-churn-proxy", why="front door: proxy logs", gateway=g),
        s.CreateGatewayFunction(name="sme-churn-proxy", why="front door: proxy to the endpoint", gateway=g),
        s.CreateGatewayApi(name="sme-churn", why="front door: REST API, POST /invoke, API key required, stage prod",
                           gateway=g),
        s.CreateGatewayKey(name="sme-churn", why="API key; 50 req/s (burst 100), 100000 per day", gateway=g),
    ))


def test_what_exists_already_is_not_planned_again_and_the_alarms_that_exist_are_kept(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"abc")
    d = desired(data=str(model), role="create", update=UPDATE)
    done = replace(live(d), bucket_exists=True, artifact_exists=True, role_exists=True, role_policy=d.role.policy,
                   alarms=frozenset({"sme-churn-AllTraffic-5xx"}))
    assert plan_deploy(d, done).steps == (
        s.PutAlarm(name="sme-churn-AllTraffic-latency",
                   why="AllTraffic: average model latency above 1000 ms; rolls back updates", alarm=d.update.alarms[1]),)
    drifted = replace(done, role_policy='{"Statement": []}', bucket_gap="tags missing")
    assert plan_deploy(d, drifted).steps[:2] == (
        s.CreateBucket(name=d.artifact.bucket, action="update", why="finish: tags missing", artifact=d.artifact),
        s.PutRolePolicy(name="sme-churn-sagemaker/sme-least-privilege",
                        why="role policy differs from what this deploy needs", role=d.role))


def test_a_changed_spec_names_the_live_config_it_replaces():
    old, new = desired(count=2), desired(count=3, data="s3://bucket/other.tar.gz")
    observed = Observed(endpoint=endpoint(old.config.name))
    assert plan_deploy(new, observed) == Plan((
        s.CreateModel(name=new.model.name, why="model spec changed", model=new.model),
        s.CreateEndpointConfig(name=new.config.name, why=f"spec differs from live config {old.config.name}",
                               config=new.config),
        s.UpdateEndpoint(name="churn", why=f"{old.config.name} -> {new.config.name}", config_name=new.config.name),
        s.WaitEndpoint(name="churn", why=f"until InService on {new.config.name}", config_name=new.config.name),
    ))


def test_a_failed_endpoint_is_deleted_and_made_again_with_the_reason_in_a_note():
    d = desired()
    cfg = d.config.name
    for reason, said in (("ping failed", "ping failed"), (None, "no reason given")):
        assert plan_deploy(d, live(d, status="Failed", reason=reason)) == Plan((
            s.DeleteEndpoint(name="churn", why="endpoint is Failed"),
            s.WaitEndpointDeleted(name="churn", why="until deleted"),
            s.CreateEndpoint(name="churn", why="recreate after failure", config_name=cfg),
            s.WaitEndpoint(name="churn", why=f"until InService on {cfg}", config_name=cfg),
        ), (f"endpoint churn is Failed ({said}); it will be recreated",))


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack"])
def test_an_endpoint_that_is_changing_is_waited_for_before_anything_else(status):
    d = desired()
    cfg = d.config.name
    assert plan_deploy(d, live(d, status=status)) == Plan(
        (s.WaitEndpoint(name="churn", why=f"already {status}", config_name=cfg),),
        (f"endpoint churn is already {status} on {cfg}; waiting for it",))
    assert plan_deploy(d, live(d, status=status, config="churn-config-old")) == Plan((
        s.WaitEndpoint(name="churn", why=f"{status} must finish first", config_name="churn-config-old"),
        s.UpdateEndpoint(name="churn", why=f"churn-config-old -> {cfg}", config_name=cfg),
        s.WaitEndpoint(name="churn", why=f"until InService on {cfg}", config_name=cfg),
    ), (f"endpoint churn is {status} on churn-config-old; waiting before updating it",))


def test_an_update_under_autoscaling_lets_go_of_scaling_keeps_counts_and_takes_it_back_after():
    d = desired(count=3, autoscaling={"min": 2, "max": 6}, update=UPDATE)
    [spec], cfg = d.scaling, d.config.name
    five_xx, latency = d.update.alarms
    observed = Observed(model_exists=True, endpoint=endpoint("churn-config-old", variants=(VariantView("AllTraffic", 5, 5),)),
                        scaling=(ScalingView(RID, 2, 6, ((POLICY, spec.policy),)),))
    assert plan_deploy(d, observed).steps == (
        s.CreateEndpointConfig(name=cfg, why="spec differs from live config churn-config-old", config=d.config),
        s.PutAlarm(name=five_xx.name, why=five_xx.description, alarm=five_xx),
        s.PutAlarm(name=latency.name, why=latency.description, alarm=latency),
        s.DeregisterScaling(name=RID, why="scaling must not act during the update"),
        s.UpdateEndpoint(name="churn", why=f"churn-config-old -> {cfg}; blue/green linear steps of 25%, bake 120s, "
                         "rolls back on 2 alarms; keeps scaled instance counts", config_name=cfg, retain=True,
                         deployment_config=d.update.deployment_config),
        s.WaitEndpoint(name="churn", why=f"until InService on {cfg}", config_name=cfg),
        s.RegisterScaling(name=RID, why="register again after the update: 2-6 instances", scaling=spec),
        s.PutScalingPolicy(name=POLICY, why="target tracking at 70", scaling=spec),
    )


def test_an_update_that_waits_for_a_change_first_still_lets_go_of_scaling_around_its_own_update():
    d = desired(autoscaling={"min": 2, "max": 6})
    [spec], cfg = d.scaling, d.config.name
    observed = Observed(model_exists=True, config_exists=True, endpoint=endpoint("churn-config-old", "Updating"),
                        scaling=(ScalingView(RID, 2, 6, ((POLICY, spec.policy),)),))
    assert plan_deploy(d, observed).steps == (
        s.WaitEndpoint(name="churn", why="Updating must finish first", config_name="churn-config-old"),
        s.DeregisterScaling(name=RID, why="scaling must not act during the update"),
        s.UpdateEndpoint(name="churn", why=f"churn-config-old -> {cfg}; keeps scaled instance counts",
                         config_name=cfg, retain=True),
        s.WaitEndpoint(name="churn", why=f"until InService on {cfg}", config_name=cfg),
        s.RegisterScaling(name=RID, why="register again after the update: 2-6 instances", scaling=spec),
        s.PutScalingPolicy(name=POLICY, why="target tracking at 70", scaling=spec),
    )


def test_an_update_without_scaling_or_update_spec_sets_the_counts_it_asks_for():
    d = desired(count=3)
    [step] = [st for st in plan_deploy(d, live(d, config="churn-config-old")).steps if st.op == "update_endpoint"]
    assert step == s.UpdateEndpoint(name="churn", why=f"churn-config-old -> {d.config.name}",
                                    config_name=d.config.name, retain=False, deployment_config="")


def test_live_scaling_is_changed_only_where_it_differs():
    d = desired(autoscaling={"min": 2, "max": 6})
    [spec] = d.scaling
    narrow = ScalingView(RID, 1, 4, ((POLICY, spec.policy),))
    assert plan_deploy(d, replace(live(d), scaling=(narrow,))).steps == (
        s.RegisterScaling(name=RID, action="update", why="capacity 1-4 -> 2-6", scaling=spec),)
    stale = ScalingView(RID, 2, 6, ((POLICY, '{"TargetValue": 50.0}'),))
    assert plan_deploy(d, replace(live(d), scaling=(stale,))).steps == (
        s.PutScalingPolicy(name=POLICY, why="policy changed", scaling=spec),)
    bare = ScalingView(RID, 2, 6, (("someone-elses", "{}"),))
    assert plan_deploy(d, replace(live(d), scaling=(bare,))).steps == (
        s.PutScalingPolicy(name=POLICY, why="new policy", scaling=spec),)


def test_each_variants_scaling_is_planned_on_its_own():
    two = replace(experiment(autoscaling={"min": 1, "max": 3}),
                  variants=(VariantConfig("A", "ml.m5.large", 1, 0.5), VariantConfig("B", "ml.m5.large", 1, 0.5)))
    d = resolve(two, "us-east-1", "123456789012")
    a, b = d.scaling
    for scaling, first in (((), a), ((ScalingView(a.resource_id, 1, 2, ((a.policy_name, a.policy),)),), None)):
        steps = plan_deploy(d, replace(live(d), scaling=scaling)).steps
        wanted_a = (s.RegisterScaling(name="endpoint/churn/variant/A", why="new scalable target: 1-3 instances",
                                      scaling=a), s.PutScalingPolicy(name="sme-churn-A-tracking",
                                                                     why="target tracking at 70", scaling=a))
        if first is None:
            wanted_a = (s.RegisterScaling(name="endpoint/churn/variant/A", action="update",
                                          why="capacity 1-2 -> 1-3", scaling=a),)
        assert steps == wanted_a + (
            s.RegisterScaling(name="endpoint/churn/variant/B", why="new scalable target: 1-3 instances", scaling=b),
            s.PutScalingPolicy(name="sme-churn-B-tracking", why="target tracking at 70", scaling=b))


def test_an_update_that_adds_autoscaling_keeps_the_counts_it_scales_from():
    d = desired(count=3, autoscaling={"min": 2, "max": 6})
    [step] = [st for st in plan_deploy(d, live(d, config="churn-config-old")).steps if st.op == "update_endpoint"]
    assert step.retain is True and step.why.endswith("; keeps scaled instance counts")


def test_scaling_removed_from_the_file_is_deregistered_only_where_sme_manages_it():
    d = desired()
    ours = ScalingView(RID, 1, 3, ((POLICY, "{}"),))
    other_endpoint = ScalingView("endpoint/other/variant/AllTraffic", 1, 3, ((POLICY, "{}"),))
    gone_variant = ScalingView("endpoint/churn/variant/Old", 1, 3, (("sme-churn-Old-tracking", "{}"),))
    for scaling in ((other_endpoint, gone_variant, ours), (ours, other_endpoint)):
        assert plan_deploy(d, replace(live(d), scaling=scaling)).steps == (
            s.DeregisterScaling(name=RID, why="autoscaling removed from the experiment file"),), scaling


def test_a_front_door_is_mended_where_it_differs():
    d = desired(gateway={})
    g = d.gateway
    have = GATEWAY_PARTS
    new_code = GatewayView(have, "an-older-sha", g.usage_limits)
    assert plan_deploy(d, replace(live(d), gateway=new_code)).steps == (
        s.UpdateGatewayFunction(name="sme-churn-proxy", why="the proxy's handler source changed", gateway=g),)
    throttled = GatewayView(have, g.code_sha256, (10.0, 20, 1000, "DAY"))
    assert plan_deploy(d, replace(live(d), gateway=throttled)).steps == (
        s.UpdateUsagePlan(name="u1", why="throttle/quota changed to 50 req/s (burst 100), 100000 per day",
                          gateway=g),)
    for unknown in (GatewayView(have, "", ()), GatewayView(have, g.code_sha256, ())):
        assert plan_deploy(d, replace(live(d), gateway=unknown)).empty, "what cannot be read is not changed"
    no_key = GatewayView(tuple(p for p in have if p[0] != "gateway-key"), g.code_sha256, g.usage_limits)
    assert plan_deploy(d, replace(live(d), gateway=no_key)).steps == (
        s.CreateGatewayKey(name="sme-churn", why="API key; 50 req/s (burst 100), 100000 per day", gateway=g),)
    half_role = GatewayView(have, g.code_sha256, g.usage_limits, (("gateway-role", "policy missing"),
                                                                  ("usage-plan", "stage not attached")))
    assert plan_deploy(d, replace(live(d), gateway=half_role)).steps == (
        s.CreateGatewayRole(name="sme-churn-proxy", action="update", why="finish: policy missing", gateway=g),
        s.CreateGatewayKey(name="sme-churn", action="update", why="finish: stage not attached", gateway=g))


def test_a_removed_front_door_is_deleted_part_by_part_in_teardowns_order():
    d = desired()
    removal = plan_deploy(d, replace(live(d), gateway=GatewayView(GATEWAY_PARTS[::-1])))
    why = "gateway removed from the experiment file"
    assert removal.steps == (
        s.Delete(name="u1", kind="usage-plan", why=why), s.Delete(name="k1", kind="gateway-key", why=why),
        s.Delete(name="a1", kind="gateway-api", why=why), s.Delete(name="sme-churn-proxy", kind="lambda", why=why),
        s.Delete(name="/aws/lambda/sme-churn-proxy", kind="log-group", why=why),
        s.Delete(name="sme-churn-proxy", kind="gateway-role", why=why))


def test_the_summary_line_counts_changes_by_action():
    d = desired(count=3)
    assert plan_summary(plan_deploy(d, live(d))) == "no changes: the endpoint already matches the spec"
    assert plan_summary(plan_deploy(d, live(d, config="churn-config-old"))) == "1 to update"
    assert plan_summary(plan_deploy(d, Observed())) == "3 to create"
    assert plan_summary(plan_deploy(d, live(d, status="Updating"))) == "only waits"
    mixed = Plan((s.CreateModel(name="m", model=d.model), s.DeleteEndpoint(name="e"), s.CreateModel(name="n", model=d.model)))
    assert plan_summary(mixed) == "2 to create, 1 to delete"


def test_an_endpoint_updating_shows_the_config_it_is_on_its_way_to():
    """AWS keeps the old EndpointConfigName while Updating; the config being deployed is PendingDeploymentSummary's."""
    from sme.core.observe import endpoint_view

    raw = {"EndpointName": "churn", "EndpointStatus": "Updating", "EndpointConfigName": "churn-config-old",
           "PendingDeploymentSummary": {"EndpointConfigName": "churn-config-new"}}
    assert endpoint_view(raw).config_name == "churn-config-new"
    done = {"EndpointName": "churn", "EndpointStatus": "InService", "EndpointConfigName": "churn-config-old"}
    assert endpoint_view(done).config_name == "churn-config-old"
