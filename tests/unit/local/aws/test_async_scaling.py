"""The twin's autoscaling of an asynchronous endpoint, piece by piece: the alarm that wakes it from zero, the step
adjustment it applies, the target tracking on its backlog, and a fleet that goes to zero and never retires an
instance in the middle of a request. moto's own CloudWatch backend holds the data (in this process, under an
account of these tests' own); the clock is injected, nothing sleeps.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from sme.core.resolve import wake_spec
from sme.local.aws import alarms
from sme.local.aws.endpoints import Fleet, LocalEndpoint, LocalEndpoints
from sme.local.aws.scaler import Scaler, step_adjustment

ACCOUNT, REGION = "210987654321", "eu-west-1"
T0 = 1_800_000_000.0
DIMS = [{"Name": "EndpointName", "Value": "queue"}]


@pytest.fixture
def cloudwatch():
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[ACCOUNT][REGION]
    backend.reset()
    return cloudwatch_backends[ACCOUNT][REGION]


def put(backend, name: str, value: float, at: float) -> None:
    backend.put_metric_data("AWS/SageMaker", [{"MetricName": name, "Dimensions": DIMS, "Value": value,
                                               "Timestamp": datetime.fromtimestamp(at, tz=timezone.utc)}])


def wake_alarm(backend, policy_arn: str = "arn:wake"):
    """The alarm exactly as sme's deploy creates it (sme.core.resolve.wake_spec)."""
    a = wake_spec("queue", "AllTraffic").alarm
    return backend.put_metric_alarm(
        name=a.name, namespace=a.namespace, metric_name=a.metric, comparison_operator=a.comparison,
        evaluation_periods=a.evaluation_periods, datapoints_to_alarm=a.datapoints_to_alarm, period=a.period,
        threshold=a.threshold, statistic=a.statistic, description=a.description,
        dimensions=[{"Name": k, "Value": v} for k, v in a.dimensions], alarm_actions=[policy_arn],
        treat_missing_data=a.treat_missing_data)


# -- the alarm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("points, state", [([1, 1], "ALARM"), ([1, 0], "OK"), ([0, 1], "OK"), ([], "INSUFFICIENT_DATA")])
def test_the_wake_alarm_fires_on_two_of_two_data_points_with_a_backlog_and_no_instance(cloudwatch, points, state):
    alarm = wake_alarm(cloudwatch)
    for i, value in enumerate(points):
        put(cloudwatch, "HasBacklogWithoutCapacity", value, T0 - 2 + i)
    assert alarms.evaluate(cloudwatch, alarm, T0, period=1.0)[0] == state
    assert cloudwatch.alarms[alarm.name].state_value == state, "DescribeAlarms shows the state the twin judged"


def test_data_older_than_the_evaluation_range_does_not_count(cloudwatch):
    alarm = wake_alarm(cloudwatch)
    put(cloudwatch, "HasBacklogWithoutCapacity", 1, T0 - 10)
    put(cloudwatch, "HasBacklogWithoutCapacity", 1, T0 - 9)
    assert alarms.evaluate(cloudwatch, alarm, T0, period=1.0)[0] == "INSUFFICIENT_DATA"


# -- the step policy ---------------------------------------------------------------------------------------
def test_step_adjustments_follow_the_breach_size_and_the_adjustment_type():
    wake = json.loads(wake_spec("queue", "AllTraffic").policy)
    assert step_adjustment(wake, 0.0, 0) == 1, "a breach of 0 (metric = threshold) is in [0, inf)"
    assert step_adjustment(wake, -0.5, 0) is None
    steps = {"StepAdjustments": [{"MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
                                 {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 50}]}
    assert step_adjustment({**steps, "AdjustmentType": "PercentChangeInCapacity"}, 20, 5) == 2, "2.5 toward zero"
    assert step_adjustment({**steps, "AdjustmentType": "ExactCapacity"}, 5, 3) == -2, "to exactly 1"


# -- the scaler's decisions --------------------------------------------------------------------------------
@dataclass
class FakeEndpoints:
    resized: list = field(default_factory=list)
    refuse: bool = False

    def resize(self, ep, endpoint, variant, count, busy):
        self.resized.append((count, busy))
        return not self.refuse


def scaler_for(cloudwatch, clock, **policies):
    queues = SimpleNamespace(busy_ports=lambda *key: frozenset({9001}))
    scaler = Scaler(FakeEndpoints(), metrics=None, window=5.0, clock=clock, queues=queues, metrics_period=1.0)
    ep = SimpleNamespace(account=ACCOUNT, region=REGION, name="queue")
    target = SimpleNamespace(min_capacity=0, max_capacity=4)
    found = []
    for name, (kind, cfg) in policies.items():
        found.append(SimpleNamespace(
            policy_name=name, policy_arn=f"arn:{name}", step_scaling_policy_configuration=cfg if kind == "step" else None,
            target_tracking_scaling_policy_configuration=cfg if kind == "tracking" else None))
    return scaler, ep, target, found


BACKLOG = {"TargetValue": 5.0, "ScaleInCooldown": 0, "ScaleOutCooldown": 0, "CustomizedMetricSpecification": {
    "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker", "Statistic": "Average",
    "Dimensions": DIMS}}


def test_at_zero_a_backlog_under_the_target_waits_for_the_wake_policy_which_adds_one(cloudwatch):
    scaler, ep, target, policies = scaler_for(cloudwatch, lambda: T0, tracking=("tracking", BACKLOG))
    for i in range(3):
        put(cloudwatch, "ApproximateBacklogSizePerInstance", 3.0, T0 - 3 + i)
        put(cloudwatch, "HasBacklogWithoutCapacity", 1.0, T0 - 3 + i)
    scaler._evaluate_one(ep, None, "AllTraffic", 0, target, policies, T0)
    assert scaler.endpoints.resized == [], "3 waiting is not above the target of 5: tracking alone leaves it at 0"

    scaler, ep, target, policies = scaler_for(cloudwatch, lambda: T0, tracking=("tracking", BACKLOG),
                                              wake=("step", json.loads(wake_spec("queue", "AllTraffic").policy)))
    wake_alarm(cloudwatch, policy_arn="arn:wake")
    scaler._evaluate_one(ep, None, "AllTraffic", 0, target, policies, T0)
    assert [count for count, _ in scaler.endpoints.resized] == [1]
    scaler._evaluate_one(ep, None, "AllTraffic", 0, target, policies, T0 + 10)
    assert len(scaler.endpoints.resized) == 1, "the step policy's 300 s cooldown holds the next step"


def test_above_the_target_at_zero_tracking_scales_out_to_hold_it(cloudwatch):
    scaler, ep, target, policies = scaler_for(cloudwatch, lambda: T0, tracking=("tracking", BACKLOG))
    put(cloudwatch, "ApproximateBacklogSizePerInstance", 12.0, T0 - 1)
    scaler._evaluate_one(ep, None, "AllTraffic", 0, target, policies, T0)
    assert [count for count, _ in scaler.endpoints.resized] == [3], "ceil(12 / 5)"


def test_an_empty_queue_scales_in_one_at_a_time_to_zero_and_busy_ports_are_passed_on(cloudwatch):
    scaler, ep, target, policies = scaler_for(cloudwatch, lambda: T0, tracking=("tracking", BACKLOG))
    put(cloudwatch, "ApproximateBacklogSizePerInstance", 0.0, T0 - 1)
    scaler._evaluate_one(ep, None, "AllTraffic", 2, target, policies, T0)
    scaler._evaluate_one(ep, None, "AllTraffic", 1, target, policies, T0 + 1)
    assert scaler.endpoints.resized == [(1, frozenset({9001})), (0, frozenset({9001}))]


def test_a_refused_scale_in_is_not_reported_as_an_activity(cloudwatch):
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    scaler, ep, target, policies = scaler_for(cloudwatch, lambda: T0, tracking=("tracking", BACKLOG))
    scaler.endpoints.refuse = True
    put(cloudwatch, "ApproximateBacklogSizePerInstance", 0.0, T0 - 1)
    before = len(getattr(applicationautoscaling_backends[ACCOUNT][REGION], "_sme_activities", []))
    scaler._evaluate_one(ep, None, "AllTraffic", 1, target, policies, T0)
    assert len(getattr(applicationautoscaling_backends[ACCOUNT][REGION], "_sme_activities", [])) == before
    assert scaler.last_any == {}, "no cooldown starts for a scale-in that did not happen"


# -- the fleet ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class FakeInstance:
    port: int
    variant: str = "AllTraffic"


def fleet(*ports: int) -> tuple[LocalEndpoints, LocalEndpoint, list]:
    eps = LocalEndpoints.__new__(LocalEndpoints)  # no launcher: nothing here starts a process
    eps.lock = threading.RLock()
    stopped: list = []
    eps._stop = lambda ep, instances: stopped.extend(i.port for i in instances)
    ep = LocalEndpoint("queue", ACCOUNT, REGION, live=Fleet("c", {"AllTraffic": [FakeInstance(p) for p in ports]}))
    return eps, ep, stopped


def endpoint_object():
    return SimpleNamespace(production_variants=[{"VariantName": "AllTraffic"}])


def test_a_real_time_fleet_keeps_one_instance_and_retires_the_newest_first():
    eps, ep, stopped = fleet(1, 2, 3)
    assert eps.resize(ep, endpoint_object(), "AllTraffic", 1)
    assert stopped == [3, 2] and [i.port for i in ep.live.instances["AllTraffic"]] == [1]


def test_count_zero_retires_the_last_instance_but_never_a_busy_one():
    eps, ep, stopped = fleet(1, 2)
    endpoint = endpoint_object()
    assert eps.resize(ep, endpoint, "AllTraffic", 1, busy=frozenset({2}))
    assert stopped == [1], "the idle instance goes, the one processing a request stays"
    assert not eps.resize(ep, endpoint, "AllTraffic", 0, busy=frozenset({2})), "nothing idle to retire"
    assert eps.resize(ep, endpoint, "AllTraffic", 0)
    assert stopped == [1, 2] and ep.live.instances["AllTraffic"] == []
    assert endpoint.production_variants[0]["CurrentInstanceCount"] == 0
