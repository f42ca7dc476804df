"""A guarded update's steps, traffic split, baking periods and rollback, on an injected clock (no processes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sme.guardrails import step_instances, step_shares
from sme.local.aws import guardrails
from sme.local.aws.endpoints import Fleet


def routing(kind: str, value: float | None = None, size_type: str = "CAPACITY_PERCENT", wait: int = 10) -> dict:
    out: dict = {"Type": kind, "WaitIntervalInSeconds": wait}
    if kind == "CANARY":
        out["CanarySize"] = {"Type": size_type, "Value": value}
    if kind == "LINEAR":
        out["LinearStepSize"] = {"Type": size_type, "Value": value}
    return out


@pytest.mark.parametrize("config, instances, expected", [
    (routing("ALL_AT_ONCE"), 3, [3]),
    (routing("CANARY", 50), 3, [1, 3]),  # half of 3 rounds down to one instance
    (routing("CANARY", 25), 8, [2, 8]),
    (routing("CANARY", 10), 3, [1, 3]),  # at least one instance
    (routing("CANARY", 2, "INSTANCE_COUNT"), 5, [2, 5]),
    (routing("LINEAR", 34), 3, [1, 2, 3]),
    (routing("LINEAR", 20), 10, [2, 4, 6, 8, 10]),
    (routing("LINEAR", 30), 10, [3, 6, 9, 10]),
    (routing("CANARY", 50), 1, [1]),  # one instance: the canary is the whole fleet, one step
])
def test_each_step_turns_on_whole_instances_of_the_new_fleet(config, instances, expected):
    assert step_instances(config, instances) == expected
    assert step_shares(config, instances)[-1] == 1.0


def test_the_split_sends_exactly_the_share_of_requests_to_the_new_fleet():
    green = [object(), object(), object()]
    shift = guardrails.Shift({"AllTraffic": green}, {"AllTraffic": 1}, {"AllTraffic": 1 / 3})
    picked = [shift.pick("AllTraffic") for _ in range(300)]
    served = [p for p in picked if p is not None]
    assert len(served) == 100, "a third of the requests, exactly"
    assert set(map(id, served)) == {id(green[0])}, "only the instances turned on take traffic"
    assert shift.pick("Other") is None, "a variant the update does not shift stays on the old fleet"


def deployment(kind="CANARY", value=50, wait=10, termination=5, timeout=None, alarms=("sme-e-v-5xx",)):
    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing(kind, value, wait=wait),
                                        "TerminationWaitInSeconds": termination},
              "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]}}
    if timeout:
        config["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] = timeout
    green = Fleet("c2", {"AllTraffic": ["g1", "g2", "g3"]})
    ep = SimpleNamespace(pending=green, deployment=guardrails.plan(config, 0.0, "c2"), shift=None,
                         config_metrics=False)
    return ep


def quiet(names, now):
    return []


def test_a_canary_bakes_then_shifts_all_then_bakes_again_then_waits_to_terminate_the_old_fleet():
    ep = deployment()
    assert ep.deployment.phase == "Creating"
    guardrails.begin(ep, 100.0)
    assert ep.shift.share == {"AllTraffic": 1 / 3} and ep.config_metrics
    assert guardrails.advance(ep, 109.9, quiet) == ("shifting", "") and ep.deployment.step == 0
    assert guardrails.advance(ep, 110.0, quiet) == ("shifting", "")
    assert ep.shift.share == {"AllTraffic": 1.0} and ep.deployment.phase == "Baking"
    assert guardrails.advance(ep, 120.0, quiet) == ("shifting", "") and ep.deployment.phase == "Terminating"
    assert guardrails.advance(ep, 124.0, quiet) == ("shifting", "")
    assert guardrails.advance(ep, 125.0, quiet) == ("done", "")
    assert [(h["step"], h["at"], h["share"]["AllTraffic"]) for h in ep.deployment.history] == \
        [(1, 100.0, 1 / 3), (2, 110.0, 1.0)]


def test_an_alarm_during_a_baking_period_rolls_back_naming_the_alarm_and_the_step():
    ep = deployment(kind="LINEAR", value=34)
    guardrails.begin(ep, 0.0)
    assert guardrails.advance(ep, 10.0, quiet) == ("shifting", "") and ep.deployment.step == 1
    asked = []

    def firing(names, now):
        asked.append((tuple(names), now))
        return ["sme-e-v-5xx"]

    outcome, reason = guardrails.advance(ep, 12.0, firing)
    assert outcome == "rollback" and "sme-e-v-5xx" in reason and "step 2" in reason
    assert asked == [(("sme-e-v-5xx",), 12.0)]


def test_alarms_are_not_evaluated_once_the_last_baking_period_is_over():
    ep = deployment(kind="ALL_AT_ONCE", wait=2, termination=30)
    guardrails.begin(ep, 0.0)
    assert guardrails.advance(ep, 2.0, quiet) == ("shifting", "") and ep.deployment.phase == "Terminating"
    assert guardrails.advance(ep, 3.0, lambda names, now: ["sme-e-v-5xx"]) == ("shifting", "")


def test_an_update_past_its_maximum_execution_time_is_rolled_back():
    ep = deployment(wait=600, timeout=900)
    guardrails.begin(ep, 10.0)
    outcome, reason = guardrails.advance(ep, 901.0, quiet)
    assert outcome == "rollback" and "MaximumExecutionTimeoutInSeconds" in reason


def test_no_blue_green_policy_means_no_guarded_update():
    assert guardrails.plan(None, 0.0, "c2") is None
    assert guardrails.plan({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}}, 0.0, "c2") is None


def test_the_pending_summary_shows_the_new_config_and_each_variants_step():
    ep = deployment()
    variants = [{"VariantName": "AllTraffic", "DesiredInstanceCount": 3, "CurrentInstanceCount": 3,
                 "DesiredWeight": 1.0, "CurrentWeight": 1.0}]
    creating = guardrails.pending_summary(ep, variants, now=5.0)
    assert creating["EndpointConfigName"] == "c2"
    assert creating["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Creating"
    guardrails.begin(ep, 50.0)
    [row] = guardrails.pending_summary(ep, variants, now=51.0)["ProductionVariants"]
    assert row["CurrentInstanceCount"] == 3 and row["DesiredInstanceCount"] == 3
    [status] = row["VariantStatus"]
    assert status["Status"] == "Baking" and status["StartTime"].timestamp() == 50.0
    assert "1 of 3 new instances (33% of traffic)" in status["StatusMessage"]


def test_two_describes_that_see_the_new_fleet_up_together_begin_its_shifts_once():
    """A DescribeEndpoint and the control loop can ping the new fleet at the same moment: the first shift is
    made once, so step 1's StartTime stays the one it began with, as in AWS (found by `sme run`, which saw a
    second baking stage 2 ms after the first and called it step 2)."""
    import threading
    import time

    from sme.local.aws.endpoints import LocalEndpoint, LocalEndpoints

    both_pinged = threading.Barrier(2, timeout=10)

    class Ready:
        def state(self):
            both_pinged.wait() if threading.current_thread().name.startswith("describe") else None
            return "ready", ""

    endpoints = LocalEndpoints()
    ep = LocalEndpoint("e", "123456789012", "us-east-1")
    ep.live = Fleet("c1", {"AllTraffic": [Ready()]})
    ep.pending = Fleet("c2", {"AllTraffic": [Ready(), Ready(), Ready()]})
    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing("CANARY", 34, wait=60)}}
    ep.deployment = guardrails.plan(config, time.time(), "c2")
    endpoints.endpoints[(ep.account, ep.region, ep.name)] = ep
    backend = SimpleNamespace(account_id=ep.account, region_name=ep.region)
    endpoint = SimpleNamespace(endpoint_name="e")
    threads = [threading.Thread(target=endpoints.on_describe, args=(backend, endpoint), name=f"describe-{i}")
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert [h["step"] for h in ep.deployment.history] == [1]
    assert ep.deployment.phase == "Baking" and ep.deployment.step == 0
