"""Target tracking for local endpoints: read the policies from Application Auto Scaling, act on them.

Every evaluation, for each SageMaker variant that is a scalable target with a target-tracking policy:
the metric (InvocationsPerInstance per minute by default; CPUUtilization for a customized metric on
it) is measured over the last ``window`` seconds, the wanted capacity is ceil(current x metric /
target) clamped to [min, max], and the fleet is resized when the cooldown allows: scale-out waits
ScaleOutCooldown after the last scale-out, scale-in waits ScaleInCooldown after any scaling.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sme.core.names import scaling_resource_id


class Scaler:
    def __init__(self, endpoints: Any, metrics: Any, window: float = 30.0, clock: Any = time.time):
        self.endpoints, self.metrics, self.window, self.clock = endpoints, metrics, window, clock
        self.last_out: dict[tuple, float] = {}
        self.last_any: dict[tuple, float] = {}

    def evaluate(self) -> None:
        from moto.applicationautoscaling.models import applicationautoscaling_backends
        from moto.sagemaker.models import sagemaker_backends

        now = self.clock()
        for ep in self.endpoints.live_endpoints():
            if ep.live is None or ep.pending is not None or ep.warming:
                continue  # an update or a scale-out is still coming up
            aas = applicationautoscaling_backends[ep.account][ep.region]
            sm = sagemaker_backends[ep.account][ep.region]
            endpoint = sm.endpoints.get(ep.name)
            if endpoint is None:
                continue
            for variant, instances in list(ep.live.instances.items()):
                resource = scaling_resource_id(ep.name, variant)
                target = aas.targets.get("sagemaker:variant:DesiredInstanceCount", {}).get(resource)
                policy = next((p for p in aas.policies.values() if p.resource_id == resource
                               and p.target_tracking_scaling_policy_configuration), None)
                if target is None or policy is None:
                    continue
                self._evaluate_one(ep, endpoint, variant, len(instances), target, policy, now)

    def _evaluate_one(self, ep: Any, endpoint: Any, variant: str, current: int, target: Any, policy: Any,
                      now: float) -> None:
        cfg = policy.target_tracking_scaling_policy_configuration
        value = self._metric(ep, variant, current, cfg, now)
        if value is None:
            return
        goal = float(cfg["TargetValue"])
        wanted = math.ceil(current * value / goal) if goal > 0 else current
        wanted = max(int(target.min_capacity), min(int(target.max_capacity), wanted))
        key = (ep.account, ep.region, ep.name, variant)
        if wanted > current:
            if now - self.last_out.get(key, 0) < float(cfg.get("ScaleOutCooldown", 300)):
                return
            self.last_out[key] = now
        elif wanted < current:
            if cfg.get("DisableScaleIn") or now - self.last_any.get(key, 0) < float(cfg.get("ScaleInCooldown", 300)):
                return
            wanted = current - 1  # scale in gently, one instance at a time
        else:
            return
        self.last_any[key] = now
        self.endpoints.resize(ep, endpoint, variant, wanted)
        from sme.local.aws.patches.autoscaling import add_activity

        add_activity(scaling_resource_id(ep.name, variant),
                                f"Setting desired instance count to {wanted}.",
                                cause=f"monitor alarm: {self._metric_name(cfg)} = {value:.1f} against target "
                                      f"{goal:g}; changing the desired capacity from {current} to {wanted}",
                                account_id=ep.account, region=ep.region)

    def _metric(self, ep: Any, variant: str, current: int, cfg: dict, now: float) -> float | None:
        name = self._metric_name(cfg)
        key = (ep.account, ep.region, ep.name, variant)
        if name in ("SageMakerVariantInvocationsPerInstance", "InvocationsPerInstance"):
            invocations = self.metrics.invocations_since(key, now - self.window)
            return invocations / max(1, current) * 60.0 / self.window
        if name == "CPUUtilization":
            return self.metrics.last_cpu.get(key)
        return None

    @staticmethod
    def _metric_name(cfg: dict) -> str:
        predefined = cfg.get("PredefinedMetricSpecification") or {}
        if predefined:
            return predefined.get("PredefinedMetricType", "")
        return (cfg.get("CustomizedMetricSpecification") or {}).get("MetricName", "")
