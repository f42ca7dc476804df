"""The production planner: autoscaling, guarded updates and the front door on top of the base plan.

Pure, like ``sme.core.planner``: (Desired, ObservedExtras, base Plan) -> Plan. Ordering rules:

- an endpoint update is wrapped: deregister scaling -> update endpoint -> wait -> register again, and
  the update passes RetainAllVariantProperties when scaling is involved, so a deploy doesn't reset a
  scaled-out fleet;
- the update carries the DeploymentConfig of ``endpoint.update`` (blue/green traffic shifting,
  auto-rollback alarms); the alarms sme creates exist before the update starts;
- the front door is built after the endpoint (its function may only invoke that endpoint's ARN);
- a section removed from the file removes what it made.

``extras_hook`` is the ``PLAN_HOOKS`` entry: it observes (read-only) and then calls ``extend_plan``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sme.core.extras import (AlarmSpec, GatewaySpec, ScalingSpec, UpdateSpec, gateway_spec, policy_name,
                             resource_id, scaling_specs, update_spec)
from sme.core.models import Desired, Observed, Plan, Step

GATEWAY_PARTS = ("gateway-role", "log-group", "lambda", "gateway-api", "usage-plan", "gateway-key")


@dataclass(frozen=True)
class ScalingView:
    resource_id: str
    min: int
    max: int
    policies: tuple[tuple[str, str], ...] = ()  # (policy name, canonical JSON of its configuration)


@dataclass(frozen=True)
class ObservedExtras:
    """What AWS has of the production extras (read by ``sme.core.remote_extras``)."""

    scaling: tuple[ScalingView, ...] = ()
    alarms: frozenset[str] = frozenset()  # those of ours that exist
    gateway: dict[str, str] = field(default_factory=dict)  # part -> id/name of each piece that exists
    function_sha: str = ""  # the live proxy function's CodeSha256
    usage_limits: tuple = ()  # the live usage plan's (rate, burst, quota limit, quota period)


@dataclass(frozen=True)
class UpdateCall:
    """Params of the wrapped update step: what ``update_endpoint_guarded`` passes to UpdateEndpoint."""

    config: str
    retain: bool
    deployment_config: str  # JSON or ""


def extend_plan(desired: Desired, observed: Observed, extras: ObservedExtras, plan: Plan, *,
                account: str, code_sha: str = "") -> Plan:
    steps, notes = list(plan.steps), list(plan.notes)
    scaling = scaling_specs(desired)
    update = update_spec(desired)
    gateway = gateway_spec(desired, account)
    live = _ours(desired, observed, extras, scaling)
    updating = _index(steps, "update_endpoint")
    if updating is not None:
        steps = _wrap_update(steps, updating, scaling, update, live)
    else:
        steps += _scaling_changes(scaling, live) + _scaling_removals(scaling, live)
    steps = _with_alarms(steps, update, extras.alarms)
    steps += gateway_steps(gateway, extras, desired, code_sha)
    return Plan(tuple(steps), tuple(notes))


def _ours(desired: Desired, observed: Observed, extras: ObservedExtras,
          scaling: tuple[ScalingSpec, ...]) -> dict[str, ScalingView]:
    """Live targets on this endpoint's variants that sme manages: asked for now, or carrying sme's policy."""
    variants = {v.name for v in desired.config.variants}
    if observed.endpoint:
        variants |= {v.name for v in observed.endpoint.variants}
    wanted = {s.resource_id for s in scaling}
    out = {}
    for view in extras.scaling:
        variant = view.resource_id.rsplit("/", 1)[-1]
        if view.resource_id != resource_id(desired.endpoint_name, variant) or variant not in variants:
            continue
        if view.resource_id in wanted or policy_name(desired.endpoint_name, variant) in dict(view.policies):
            out[view.resource_id] = view
    return out


def _index(steps: list[Step], op: str) -> int | None:
    return next((i for i, s in enumerate(steps) if s.op == op), None)


def _wrap_update(steps: list[Step], at: int, scaling: tuple[ScalingSpec, ...], update: UpdateSpec | None,
                 live: dict[str, ScalingView]) -> list[Step]:
    old = steps[at]
    retain = bool(scaling or live)
    why = old.why + (f"; {update.summary}" if update else "") + ("; keeps scaled instance counts" if retain else "")
    call = UpdateCall(old.params, retain, update.deployment_config if update else "")
    before = [Step("deregister_scaling", "remove", "scalable-target", rid, "scaling must not act during the update",
                   rid) for rid in sorted(live)]
    wrapped = Step("update_endpoint_guarded", "update", "endpoint", old.name, why, call)
    wait_at = next((i for i in range(at + 1, len(steps)) if steps[i].op == "wait_endpoint"), at)
    after = [s for spec in scaling for s in _register(spec, "register again after the update")]
    return steps[:at] + before + [wrapped] + steps[at + 1:wait_at + 1] + after + steps[wait_at + 1:]


def _register(spec: ScalingSpec, why: str) -> list[Step]:
    return [Step("register_scaling", "register", "scalable-target", spec.resource_id,
                 f"{why}: {spec.min}-{spec.max} instances", spec),
            Step("put_scaling_policy", "update", "scaling-policy", spec.policy_name,
                 f"target tracking at {spec.policy_config['TargetValue']:g}", spec)]


def _scaling_changes(scaling: tuple[ScalingSpec, ...], live: dict[str, ScalingView]) -> list[Step]:
    steps: list[Step] = []
    for spec in scaling:
        view = live.get(spec.resource_id)
        if view is None:
            steps += _register(spec, "new scalable target")
            continue
        if (view.min, view.max) != (spec.min, spec.max):
            steps.append(Step("register_scaling", "update", "scalable-target", spec.resource_id,
                              f"capacity {view.min}-{view.max} -> {spec.min}-{spec.max}", spec))
        if dict(view.policies).get(spec.policy_name) != spec.policy:
            steps.append(Step("put_scaling_policy", "update", "scaling-policy", spec.policy_name,
                              "new policy" if spec.policy_name not in dict(view.policies) else "policy changed", spec))
    return steps


def _scaling_removals(scaling: tuple[ScalingSpec, ...], live: dict[str, ScalingView]) -> list[Step]:
    wanted = {s.resource_id for s in scaling}
    return [Step("deregister_scaling", "remove", "scalable-target", rid, "autoscaling removed from the experiment "
                 "file", rid) for rid in sorted(live) if rid not in wanted]


def _with_alarms(steps: list[Step], update: UpdateSpec | None, existing: frozenset[str]) -> list[Step]:
    wanted = [a for a in (update.alarms if update else ()) if a.name not in existing]
    if not wanted:
        return steps
    creates = [Step("put_alarm", "create", "alarm", a.name, a.description, a) for a in wanted]
    at = _index(steps, "update_endpoint_guarded")
    at = len(steps) if at is None else at - sum(1 for s in steps[:at] if s.op == "deregister_scaling")
    return steps[:at] + creates + steps[at:]


def gateway_steps(spec: GatewaySpec | None, extras: ObservedExtras, desired: Desired, code_sha: str) -> list[Step]:
    have = extras.gateway
    if spec is None:
        # removal, in the sweep's order: usage plan and key before the API, the function before its role
        order = ("usage-plan", "gateway-key", "gateway-api", "lambda", "log-group", "gateway-role")
        return [Step("remove_gateway_part", "delete", part, have[part], "gateway removed from the experiment file",
                     part) for part in order if part in have]
    steps = []
    why = "front door: "
    if "gateway-role" not in have:
        steps.append(Step("create_gateway_role", "create", "gateway-role", spec.role_name,
                          why + "may invoke only this endpoint", spec))
    if "log-group" not in have:
        steps.append(Step("create_gateway_log_group", "create", "log-group", spec.log_group, why + "proxy logs", spec))
    if "lambda" not in have:
        steps.append(Step("create_gateway_function", "create", "lambda", spec.function_name,
                          why + "proxy to the endpoint", spec))
    elif code_sha and extras.function_sha and code_sha != extras.function_sha:
        steps.append(Step("update_gateway_function", "update", "lambda", spec.function_name,
                          "the proxy's handler source changed", spec))
    if "gateway-api" not in have:
        steps.append(Step("create_gateway_api", "create", "gateway-api", spec.api_name,
                          f"REST API, POST /{spec.path}, API key required, stage {spec.stage}", spec))
    limits = f"{spec.rate:g} req/s (burst {spec.burst}), {spec.quota_limit} per {spec.quota_period.lower()}"
    if "usage-plan" not in have or "gateway-key" not in have:
        steps.append(Step("create_gateway_key", "create", "usage-plan", spec.api_name, f"API key; {limits}", spec))
    elif extras.usage_limits and extras.usage_limits != usage_limits(spec):
        steps.append(Step("update_usage_plan", "update", "usage-plan", have["usage-plan"],
                          f"throttle/quota changed to {limits}", spec))
    return steps


def usage_limits(spec: GatewaySpec) -> tuple:
    """The usage plan's limits as compared with what the API reports."""
    return (float(spec.rate), int(spec.burst), int(spec.quota_limit), spec.quota_period)


def alarm_kwargs(alarm: AlarmSpec) -> dict[str, Any]:
    return {"AlarmName": alarm.name, "AlarmDescription": alarm.description, "MetricName": alarm.metric,
            "Namespace": alarm.namespace, "Statistic": alarm.statistic, "Period": 60, "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "Threshold": alarm.threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
            "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions]}


def canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def extras_hook(aws: Any, desired: Desired, observed: Observed, plan: Plan) -> Plan:
    from sme.core.remote_extras import observe_extras
    from sme.gateway.package import code_sha256

    extras = observe_extras(aws, desired, observed)
    sha = code_sha256() if desired.extra.get("gateway") is not None else ""
    return extend_plan(desired, observed, extras, plan, account=aws.account_id, code_sha=sha)


def _register_hook() -> None:
    from sme.deploy import PLAN_HOOKS

    if extras_hook not in PLAN_HOOKS:
        PLAN_HOOKS.append(extras_hook)


_register_hook()
