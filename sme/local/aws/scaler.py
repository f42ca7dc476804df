"""Application Auto Scaling for local endpoints: read the policies of each SageMaker variant, act on them.

Every evaluation, for each variant that is a scalable target:

- a target-tracking policy measures its metric over the last ``window`` seconds (InvocationsPerInstance per
  minute by default; CPUUtilization from the runtimes; any other CustomizedMetricSpecification, such as an
  asynchronous endpoint's ApproximateBacklogSizePerInstance, from what CloudWatch holds) and wants
  ceil(current x metric / target) instances. At zero instances (an asynchronous endpoint scaled to zero) a
  per-instance metric is the whole backlog, and the policy scales out only once it exceeds the target, to
  ceil(metric / target), as AWS's "Autoscale an asynchronous endpoint" describes;
- a step-scaling policy acts while an alarm that names it is in ALARM (``alarms.evaluate``): current plus the
  step adjustment for how far the newest data point is past the threshold, at most once per ``Cooldown``;
- the fleet goes to the largest capacity any policy asks for, as Application Auto Scaling resolves several
  policies on one target, clamped to [min, max]. Scale-out waits ScaleOutCooldown after the last tracking
  scale-out; scale-in (one instance at a time) waits ScaleInCooldown after any scaling, and never retires an
  instance that is processing an asynchronous request (the queue's ``busy_ports``): it waits until one is idle.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sme.core.names import scaling_resource_id
from sme.local.aws import alarms

DIMENSION = "sagemaker:variant:DesiredInstanceCount"


class Scaler:
    def __init__(self, endpoints: Any, metrics: Any, window: float = 30.0, clock: Any = time.time,
                 queues: Any = None, metrics_period: float = 5.0):
        self.endpoints, self.metrics, self.window, self.clock = endpoints, metrics, window, clock
        self.queues, self.metrics_period = queues, metrics_period
        self.last_out: dict[tuple, float] = {}
        self.last_any: dict[tuple, float] = {}
        self.last_step: dict[tuple, float] = {}  # (variant key, step policy name) -> when it last scaled

    def evaluate(self) -> None:
        from moto.applicationautoscaling.models import applicationautoscaling_backends
        from moto.sagemaker.models import sagemaker_backends

        now = self.clock()
        for ep in self.endpoints.live_endpoints():
            if ep.live is None or ep.pending is not None or ep.warming:
                continue  # an update or a scale-out is still coming up
            aas = applicationautoscaling_backends[ep.account][ep.region]
            endpoint = sagemaker_backends[ep.account][ep.region].endpoints.get(ep.name)
            if endpoint is None:
                continue
            for variant, instances in list(ep.live.instances.items()):
                resource = scaling_resource_id(ep.name, variant)
                target = aas.targets.get(DIMENSION, {}).get(resource)
                policies = [p for p in list(aas.policies.values()) if p.resource_id == resource]
                if target is None or not policies:
                    continue
                self._evaluate_one(ep, endpoint, variant, len(instances), target, policies, now)

    def _evaluate_one(self, ep: Any, endpoint: Any, variant: str, current: int, target: Any, policies: list,
                      now: float) -> None:
        key = (ep.account, ep.region, ep.name, variant)
        low, high = int(target.min_capacity), int(target.max_capacity)
        tracking = [t for p in policies if p.target_tracking_scaling_policy_configuration
                    if (t := self._tracking(ep, variant, current, p.target_tracking_scaling_policy_configuration,
                                            now)) is not None]
        steps = [s for p in policies if p.step_scaling_policy_configuration
                 if (s := self._step(ep, key, current, p, now)) is not None]
        outs = [(max(low, min(high, wanted)), cause, name) for wanted, cause, name, ready in tracking + steps
                if ready and max(low, min(high, wanted)) > current]
        if outs:
            wanted, cause, name = max(outs, key=lambda out: out[0])
            if self._resize(ep, endpoint, variant, current, wanted, cause, now):
                if name is None:
                    self.last_out[key] = now
                else:
                    self.last_step[(key, name)] = now
            return
        if not tracking or any(max(low, min(high, wanted)) >= current for wanted, *_ in tracking):
            return  # every tracking policy must want fewer instances before any goes
        cfgs = [p.target_tracking_scaling_policy_configuration for p in policies
                if p.target_tracking_scaling_policy_configuration]
        if any(c.get("DisableScaleIn") for c in cfgs) or any(
                now - self.last_any.get(key, 0) < float(c.get("ScaleInCooldown", 300)) for c in cfgs):
            return
        cause = max(tracking, key=lambda t: t[0])[1]
        self._resize(ep, endpoint, variant, current, current - 1, cause, now)  # gently, one at a time

    def _tracking(self, ep: Any, variant: str, current: int, cfg: dict, now: float) -> tuple | None:
        """(instances wanted, cause, None, whether the scale-out cooldown allows it) or None without data."""
        value = self._metric(ep, variant, current, cfg, now)
        if value is None:
            return None
        goal = float(cfg["TargetValue"])
        if current == 0:  # the per-instance metric is the whole backlog; AlarmHigh is GreaterThanThreshold
            wanted = math.ceil(value / goal) if goal > 0 and value > goal else 0
        else:
            wanted = math.ceil(current * value / goal) if goal > 0 else current
        key = (ep.account, ep.region, ep.name, variant)
        ready = now - self.last_out.get(key, 0) >= float(cfg.get("ScaleOutCooldown", 300))
        return wanted, f"monitor alarm: {self._metric_name(cfg)} = {value:.1f} against target {goal:g}", None, ready

    def _step(self, ep: Any, key: tuple, current: int, policy: Any, now: float) -> tuple | None:
        """(current + the step adjustment, cause, policy name, whether its cooldown allows it) while an alarm
        naming the policy is in ALARM, else None."""
        from moto.cloudwatch.models import cloudwatch_backends

        cfg = policy.step_scaling_policy_configuration
        backend = cloudwatch_backends[ep.account][ep.region]
        for alarm in alarms.alarms_acting_on(backend, policy.policy_arn):
            state, value = alarms.evaluate(backend, alarm, now, self.metrics_period)
            if state != "ALARM" or value is None:
                continue
            change = step_adjustment(cfg, value - float(alarm.threshold), current)
            if change is None:
                continue
            ready = now - self.last_step.get((key, policy.policy_name), -math.inf) >= float(cfg.get("Cooldown", 300))
            return current + change, f"monitor alarm {alarm.name} in state ALARM", policy.policy_name, ready
        return None

    def _resize(self, ep: Any, endpoint: Any, variant: str, current: int, wanted: int, cause: str,
                now: float) -> bool:
        """Resize and report it as a scaling activity; False when every instance to retire is still busy."""
        from sme.local.aws.patches.autoscaling import add_activity

        busy = self.queues.busy_ports(ep.account, ep.region, ep.name) if self.queues else frozenset()
        if not self.endpoints.resize(ep, endpoint, variant, wanted, busy):
            return False
        self.last_any[(ep.account, ep.region, ep.name, variant)] = now
        add_activity(scaling_resource_id(ep.name, variant), f"Setting desired instance count to {wanted}.",
                     cause=f"{cause}; changing the desired capacity from {current} to {wanted}",
                     account_id=ep.account, region=ep.region)
        return True

    def _metric(self, ep: Any, variant: str, current: int, cfg: dict, now: float) -> float | None:
        name = self._metric_name(cfg)
        key = (ep.account, ep.region, ep.name, variant)
        if name in ("SageMakerVariantInvocationsPerInstance", "InvocationsPerInstance"):
            invocations = self.metrics.invocations_since(key, now - self.window)
            return invocations / max(1, current) * 60.0 / self.window
        if name == "CPUUtilization":
            return self.metrics.last_cpu.get(key)
        custom = cfg.get("CustomizedMetricSpecification")
        if not custom:
            return None
        from moto.cloudwatch.models import cloudwatch_backends

        return alarms.statistic_since(cloudwatch_backends[ep.account][ep.region], custom, now - self.window)

    @staticmethod
    def _metric_name(cfg: dict) -> str:
        predefined = cfg.get("PredefinedMetricSpecification") or {}
        if predefined:
            return predefined.get("PredefinedMetricType", "")
        return (cfg.get("CustomizedMetricSpecification") or {}).get("MetricName", "")


def step_adjustment(cfg: dict, breach: float, current: int) -> int | None:
    """The change in instances of the step whose interval holds ``breach`` (metric minus threshold): bounds are
    relative to the threshold, lower inclusive, a missing bound unbounded (Application Auto Scaling's
    StepAdjustment); PercentChangeInCapacity rounds toward zero, ExactCapacity sets the count."""
    for step in cfg.get("StepAdjustments") or []:
        lower = step.get("MetricIntervalLowerBound")
        upper = step.get("MetricIntervalUpperBound")
        if (lower is None or breach >= float(lower)) and (upper is None or breach < float(upper)):
            adjustment = int(step["ScalingAdjustment"])
            kind = cfg.get("AdjustmentType", "ChangeInCapacity")
            if kind == "ExactCapacity":
                return adjustment - current
            if kind == "PercentChangeInCapacity":
                return int(current * adjustment / 100)
            return adjustment
    return None
