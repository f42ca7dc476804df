"""The twin's guarded update: UpdateEndpoint with a BlueGreenUpdatePolicy, run as SageMaker's deployment
guardrails run it.

AWS behaviour reproduced (SageMaker developer guide: "Blue/Green Deployments", "Use all at once / canary /
linear traffic shifting", "Auto-Rollback Configuration and Monitoring"; API references of
BlueGreenUpdatePolicy, TrafficRoutingConfig, DescribeEndpoint's PendingDeploymentSummary and
ProductionVariantStatus):

- the new (green) fleet is provisioned beside the old (blue) one. Meanwhile DescribeEndpoint is Updating
  and still shows the old config (EndpointConfigName, ProductionVariants); PendingDeploymentSummary shows
  the new config, its variants' VariantStatus ``Creating``;
- once every new instance answers /ping, traffic shifts in the steps of ``sme.guardrails`` (all at once;
  the canary, then all; linear steps). After each shift comes a baking period of WaitIntervalInSeconds
  (VariantStatus ``Baking``) in which the AutoRollbackConfiguration's alarms are evaluated; canary and
  linear end with a final baking period with all traffic on the new fleet;
- InvokeEndpoint really goes to the new fleet for its share (``Shift.pick``), and a request counts on the
  fleet that served it: from the first shift on, the metrics are also published per fleet with the
  ``EndpointConfigName`` dimension ("CloudWatch publishes the metrics with the dimension
  EndpointConfigName:{New-Ep-Config} after the new fleet starts receiving traffic");
- an alarm in ALARM during a baking period (the old fleet's errors included, as the guide warns): all
  traffic back to the old fleet at once, the new fleet terminated, InService on the old config, with a
  FailureReason;
- after the last baking period the old fleet is kept, without traffic, for TerminationWaitInSeconds and
  the endpoint stays Updating (MaximumExecutionTimeoutInSeconds "should be larger than the total waiting
  time in TerminationWaitInSeconds and WaitIntervalInSeconds": both are part of the update); then the old
  fleet is terminated and the endpoint is InService on the new config;
- an update still going after MaximumExecutionTimeoutInSeconds is rolled back as an alarm would.

The twin's own choices, where the guide is silent: turning traffic on is immediate (no ``ActivatingTraffic``
is seen); the old fleet keeps all its instances while the share shifts; alarms are evaluated in baking
periods only; the words of FailureReason and StatusMessage are the twin's. Alarms are evaluated on the
twin's time scale (``alarms.py``: one data point per metrics period).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sme.guardrails import step_instances

PENDING_FIELDS = ("VariantName", "CurrentWeight", "DesiredWeight", "DesiredInstanceCount",
                  "CurrentServerlessConfig", "DesiredServerlessConfig")


@dataclass
class Shift:
    """The traffic split in force: per variant, how many of the new fleet's instances take traffic and what
    share of the variant's requests they get. Read on the data plane's hot path without a lock."""

    green: dict[str, list[Any]]  # variant -> the new fleet's instances (the fleet's own lists)
    on: dict[str, int]  # variant -> how many of them take traffic
    share: dict[str, float]  # variant -> the share of requests they get
    counters: dict[str, Any] = field(default_factory=dict)
    rr: Any = field(default_factory=itertools.count)

    def pick(self, variant: str) -> Any:
        """A new-fleet instance for this request, or None: the old fleet serves it. The split is exact, not
        random: of any n requests, floor(n x share) go to the new fleet."""
        share = self.share.get(variant, 0.0)
        if share <= 0:
            return None
        n = next(self.counters.setdefault(variant, itertools.count()))
        if share < 1 and math.floor((n + 1) * share) == math.floor(n * share):
            return None
        serving = tuple((self.green.get(variant) or ())[:self.on.get(variant, 0)])
        return serving[next(self.rr) % len(serving)] if serving else None


@dataclass
class Deployment:
    """One guarded update in progress."""

    new_config: str
    routing: dict[str, Any]
    wait_s: float
    termination_wait_s: float
    timeout_s: float | None
    alarms: list[str]
    started: float
    phase: str = "Creating"  # Creating | Baking | Terminating
    step: int = -1  # the step in force (index into ``steps``); -1 before the first shift
    step_started: float = 0.0
    steps: dict[str, list[int]] = field(default_factory=dict)  # variant -> new-fleet instances on, per step
    history: list[dict[str, Any]] = field(default_factory=list)  # each shift: when, which step, the shares

    def status_message(self, variant: str, now: float) -> str:
        if self.phase == "Creating":
            return "Creating the new fleet"
        counts = self.steps.get(variant) or [0]
        on, total = counts[min(self.step, len(counts) - 1)], counts[-1]
        if self.phase == "Terminating":
            return (f"All traffic on the new fleet; the old fleet is terminated in "
                    f"{max(0.0, self.termination_wait_s - (now - self.step_started)):.0f} seconds")
        return (f"Step {self.step + 1} of {len(counts)}: {on} of {total} new instances ({100 * on / total:.0f}% of "
                f"traffic), baking for {self.wait_s:g} seconds")


def plan(deployment_config: dict[str, Any] | None, now: float, new_config: str) -> Deployment | None:
    """The guarded update an UpdateEndpoint asks for, or None: no BlueGreenUpdatePolicy, the new fleet takes all
    traffic once it is up (SageMaker's default all-at-once with no baking)."""
    policy = (deployment_config or {}).get("BlueGreenUpdatePolicy")
    if not policy:
        return None
    routing = dict(policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE"})
    alarms = [a["AlarmName"] for a in ((deployment_config or {}).get("AutoRollbackConfiguration") or {})
              .get("Alarms") or [] if a.get("AlarmName")]
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    return Deployment(new_config, routing, float(routing.get("WaitIntervalInSeconds") or 0),
                      float(policy.get("TerminationWaitInSeconds") or 0), float(timeout) if timeout else None,
                      alarms, now)


def begin(ep: Any, now: float) -> None:
    """The new fleet is up: the first shift."""
    deployment, green = ep.deployment, ep.pending.instances
    deployment.steps = {v: step_instances(deployment.routing, len(group)) for v, group in green.items()}
    ep.config_metrics = True
    _shift(ep, 0, now)


def advance(ep: Any, now: float, alarm_states: Any) -> tuple[str, str]:
    """One look at a shifting update: ('shifting' | 'done' | 'rollback', reason). ``alarm_states(names, now)``
    evaluates the alarms and returns those in ALARM."""
    deployment = ep.deployment
    if deployment is None or deployment.phase == "Creating":
        return "shifting", ""
    if deployment.timeout_s is not None and now - deployment.started > deployment.timeout_s:
        return "rollback", (f"The deployment did not finish within MaximumExecutionTimeoutInSeconds "
                            f"({deployment.timeout_s:g}); traffic was rolled back to the old fleet.")
    if deployment.phase == "Baking":
        fired = alarm_states(deployment.alarms, now) if deployment.alarms else []
        if fired:
            return "rollback", (f"Deployment rolled back: CloudWatch alarm(s) {', '.join(fired)} in ALARM during the "
                                f"baking period of step {deployment.step + 1}; all traffic is back on the old fleet.")
        if now - deployment.step_started < deployment.wait_s:
            return "shifting", ""
        if deployment.step + 1 < max(len(s) for s in deployment.steps.values()):
            _shift(ep, deployment.step + 1, now)
            return "shifting", ""
        deployment.phase, deployment.step_started = "Terminating", now
    if now - deployment.step_started >= deployment.termination_wait_s:
        return "done", ""
    return "shifting", ""


def _shift(ep: Any, step: int, now: float) -> None:
    deployment = ep.deployment
    on = {v: counts[min(step, len(counts) - 1)] for v, counts in deployment.steps.items()}
    share = {v: n / max(1, deployment.steps[v][-1]) for v, n in on.items()}
    deployment.step, deployment.step_started, deployment.phase = step, now, "Baking"
    deployment.history.append({"step": step + 1, "at": now, "instances_on": on, "share": share})
    ep.shift = Shift(ep.pending.instances, on, share)  # one assignment: the data plane sees old or new


def pending_summary(ep: Any, variants: list[dict[str, Any]] | None, now: float | None = None) -> dict[str, Any] | None:
    """DescribeEndpoint's PendingDeploymentSummary while an update's new fleet exists, else None."""
    fleet, deployment = ep.pending, ep.deployment
    if fleet is None or not variants:
        return None
    now = time.time() if now is None else now
    started = deployment.started if deployment else now
    rows = []
    for variant in variants:
        name = variant["VariantName"]
        row = {k: variant[k] for k in PENDING_FIELDS if k in variant}
        if "CurrentServerlessConfig" not in row:
            row["CurrentInstanceCount"] = len(fleet.instances.get(name, []))
        phase = deployment.phase if deployment else "Creating"
        # the termination wait is shown as the last step's baking period going on (the API has no status for it)
        since = deployment.history[-1]["at"] if deployment and deployment.history else started
        message = deployment.status_message(name, now) if deployment else "Creating the new fleet"
        row["VariantStatus"] = [{"Status": "Baking" if phase == "Terminating" else phase, "StatusMessage": message,
                                 "StartTime": _when(since)}]
        rows.append(row)
    return {"EndpointConfigName": fleet.config, "ProductionVariants": rows, "StartTime": _when(started)}


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def alarms_in_alarm(account: str, region: str, period: float) -> Any:
    """``alarm_states`` for ``advance``: evaluate the named metric alarms on the twin's published metrics (an alarm
    that does not exist is skipped, as it cannot fire)."""
    from moto.cloudwatch.models import cloudwatch_backends

    from sme.local.aws import alarms

    def states(names: list[str], now: float) -> list[str]:
        backend = cloudwatch_backends[account][region]
        fired = []
        for name in names:
            alarm = backend.alarms.get(name)
            if alarm is not None and alarm.metric_name and alarms.evaluate(backend, alarm, now, period)[0] == "ALARM":
                fired.append(name)
        return fired

    return states
