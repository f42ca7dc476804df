"""The planner is pure for the production sections too: in-memory Desired and Observed in, a Plan out."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sme.core.models import GatewayView, Observed, ScalingView, VariantView
from sme.core.planner import plan_deploy
from sme.core.preflight import evaluate, peaks
from sme.core.preflight_facts import Facts, SubnetFacts
from sme.core.rollback import choose_target
from sme.errors import ConfigError, UserError
from tests.unit.core.test_planner import desired, live

RID = "endpoint/churn/variant/AllTraffic"


def plan(d, observed, **what_aws_has):
    return plan_deploy(d, replace(observed, **what_aws_has))


def ops(p):
    return [s.op for s in p.steps]


def scaled(d, low=2, high=6):
    [spec] = d.scaling
    return ScalingView(RID, low, high, ((spec.policy_name, spec.policy),))


def test_new_endpoint_registers_scaling_after_it_is_in_service():
    d = desired(autoscaling={"min": 2, "max": 6})
    assert ops(plan(d, Observed()))[-4:] == ["create_endpoint", "wait_endpoint", "register_scaling",
                                             "put_scaling_policy"]


def test_update_is_wrapped_deregister_update_register_and_retains_counts():
    d = desired(count=3, autoscaling={"min": 2, "max": 6})
    old = live(desired(count=2), config="churn-config-old")
    old = replace(old, config_exists=False, endpoint=replace(old.endpoint, variants=(VariantView("AllTraffic", 5, 5),)))
    p = plan(d, old, scaling=(scaled(d),))
    assert ops(p) == ["create_endpoint_config", "deregister_scaling", "update_endpoint", "wait_endpoint",
                      "register_scaling", "put_scaling_policy"]
    assert p.steps[2].retain is True


def test_unchanged_scaling_plans_nothing_and_changed_bounds_reregister():
    d = desired(autoscaling={"min": 2, "max": 6})
    assert plan(d, live(d), scaling=(scaled(d),)).empty
    assert ops(plan(d, live(d), scaling=(scaled(d, 1, 4),))) == ["register_scaling"]


def test_removed_section_removes_only_targets_sme_made():
    d = desired()
    mine = scaled(desired(autoscaling={"max": 6}))
    foreign = ScalingView(RID, 1, 3, (("someone-elses", "{}"),))
    assert ops(plan(d, live(d), scaling=(mine,))) == ["deregister_scaling"]
    assert plan(d, live(d), scaling=(foreign,)).empty


def test_guarded_update_carries_the_deployment_config_and_creates_alarms_first():
    d = desired(count=3, update={"strategy": "linear", "linear_step": 25, "wait": "2m", "alarms": "auto"})
    old = replace(live(desired(count=2), config="churn-config-old"), config_exists=False)
    p = plan(d, old)
    assert ops(p) == ["create_endpoint_config", "put_alarm", "put_alarm", "update_endpoint", "wait_endpoint"]
    config = json.loads(p.steps[3].deployment_config)
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR", "WaitIntervalInSeconds": 120, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert len(config["AutoRollbackConfiguration"]["Alarms"]) == 2
    assert p.steps[3].retain is False, "without autoscaling a deploy sets the counts it asks for"


def test_named_alarms_are_used_as_given():
    spec = desired(update={"alarms": ["my-5xx"]}).update
    assert json.loads(spec.deployment_config)["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "my-5xx"}]}
    assert spec.alarms == ()


def test_cpu_and_custom_metrics():
    [cpu] = desired(autoscaling={"max": 4, "metric": "cpu"}).scaling
    assert cpu.policy_config["CustomizedMetricSpecification"]["MetricName"] == "CPUUtilization"
    assert cpu.policy_config["TargetValue"] == 60.0
    with pytest.raises(ConfigError, match="autoscaling.target"):
        desired(autoscaling={"max": 4, "metric": {"name": "Q", "namespace": "N"}})
    with pytest.raises(ConfigError, match="above max"):
        desired(autoscaling={"min": 5, "max": 4})


def test_gateway_is_built_after_the_endpoint_and_removed_with_its_section():
    d = desired(gateway={})
    p = plan(d, Observed())
    assert ops(p)[-5:] == ["create_gateway_role", "create_gateway_log_group", "create_gateway_function",
                           "create_gateway_api", "create_gateway_key"]
    have = {"usage-plan": "u1", "gateway-key": "k1", "gateway-api": "a1", "lambda": "f", "log-group": "g",
            "gateway-role": "r"}
    removal = plan(desired(), live(desired()), gateway=GatewayView(tuple(have.items())))
    assert [s.kind for s in removal.steps] == ["usage-plan", "gateway-key", "gateway-api", "lambda", "log-group",
                                               "gateway-role"]


def facts(free=(251, 251, 251), quota=20.0, used=0):
    subnets = tuple(SubnetFacts(f"subnet-{i}", f"us-east-1{'abc'[i]}", n) for i, n in enumerate(free))
    return Facts(quotas={"ml.m5.large for endpoint usage": quota}, used_elsewhere={"ml.m5.large": used},
                 subnets=subnets, role="ok", artifact="ok", image="sagemaker")


def outcome(checks, prefix):
    return [c.outcome for c in checks if c.name.startswith(prefix)]


def test_preflight_counts_max_capacity_doubled_during_an_update():
    d = desired(count=2, autoscaling={"max": 5})
    assert peaks(d, plan_deploy(d, Observed()))[0].instances == 5
    old = replace(live(desired(count=1), config="x"), config_exists=False)
    assert peaks(d, plan_deploy(d, old))[0].instances == 10
    checks = evaluate(d, plan_deploy(d, old), facts(quota=12, used=3))
    assert outcome(checks, "quota") == ["fail"]


def test_preflight_subnet_headroom_and_ha_warnings():
    d = desired(count=1)
    checks = evaluate(d, plan_deploy(d, Observed()), facts(free=(0,)))
    assert outcome(checks, "subnet") == ["fail"] and outcome(checks, "HA") == ["warn", "warn"]
    assert all(c.outcome == "pass" for c in evaluate(desired(), plan_deploy(desired(), Observed()), facts()))


def test_preflight_counts_serverless_concurrency_against_the_accounts_quota():
    from sme.core.preflight import serverless_checks
    from sme.endpoint_kinds import Serverless

    d = desired(count=1)
    assert serverless_checks(d, facts()) == [], "no serverless variant: no serverless check"
    variant = replace(d.config.variants[0], instance_type=None, count=0, serverless=Serverless(2048, 10))
    d = replace(d, config=replace(d.config, variants=(variant,)))
    quotas = {"Maximum total concurrency that can be allocated across all serverless endpoints": 15.0,
              "Maximum number of serverless endpoints": 2.0}
    at = lambda held, endpoints: {c.name: c for c in serverless_checks(d, replace(  # noqa: E731
        facts(), quotas=quotas, serverless_elsewhere=(endpoints, held)))}
    fits = at(5, 1)
    assert fits["quota: serverless total concurrency"].outcome == "pass" and "0 to spare" in fits["quota: serverless total concurrency"].numbers
    assert fits["quota: serverless endpoints"].outcome == "pass"
    over = at(6, 2)
    assert over["quota: serverless total concurrency"].outcome == "fail"
    assert "lower max_concurrency to 9" in over["quota: serverless total concurrency"].fix
    assert over["quota: serverless endpoints"].outcome == "fail"
    unread = serverless_checks(d, replace(facts(), quotas={}, quota_error="denied"))
    assert [c.outcome for c in unread] == ["warn", "warn"]


def test_rollback_target_is_the_previous_recorded_config():
    history = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert choose_target(history, "c", None) == "b"
    assert choose_target(history, "b", None) == "a"
    assert choose_target(history, "c", "a") == "a"
    with pytest.raises(UserError, match="recorded history"):
        choose_target(history, "c", "zzz")
    with pytest.raises(UserError, match="no config before"):
        choose_target([{"name": "a"}], "a", None)


def test_a_front_door_left_half_made_is_finished_and_a_whole_one_plans_nothing():
    d = desired(gateway={})
    have = (("gateway-role", "sme-churn-proxy"), ("log-group", "/aws/lambda/sme-churn-proxy"),
            ("lambda", "sme-churn-proxy"), ("gateway-api", "a1"), ("usage-plan", "u1"), ("gateway-key", "k1"))
    limits = d.gateway.usage_limits
    whole = GatewayView(have, d.gateway.code_sha256, limits)
    assert plan(d, live(d), gateway=whole).empty
    half = GatewayView(have, d.gateway.code_sha256, limits,
                       (("gateway-api", "stage prod is not deployed"), ("usage-plan", "the API key is not recorded")))
    p = plan(d, live(d), gateway=half)
    assert [(s.op, s.action, s.why) for s in p.steps] == [
        ("create_gateway_api", "update", "finish: stage prod is not deployed"),
        ("create_gateway_key", "update", "finish: the API key is not recorded")]


def test_a_bucket_sme_made_but_did_not_finish_is_finished(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"abc")
    d = desired(data=str(model))
    done = replace(live(d), bucket_exists=True, artifact_exists=True)
    assert plan(d, done).empty
    p = plan(d, replace(done, bucket_gap="public access is not blocked"))
    assert [(s.op, s.action) for s in p.steps] == [("create_bucket", "update")]
