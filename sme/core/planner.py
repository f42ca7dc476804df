"""The one planner, pure: (Desired, Observed) -> Plan for every section of the experiment file. It reads
nothing and changes nothing.

Unlike chalice, which always plans an update, sme diffs: an UpdateEndpoint replaces a fleet, so when
nothing changed the plan is empty and the executor makes no mutating call. Order, section by section:

- artifact and role, then model and endpoint config (immutable, content-addressed names), then the
  endpoint: created, recreated when Failed, waited for while it changes, or updated to the new config;
- ``autoscaling:``: registered once the endpoint is InService; an endpoint update is wrapped as
  deregister -> update (RetainAllVariantProperties, so a scaled-out fleet is not reset) -> wait ->
  register again; an asynchronous endpoint with ``min: 0`` also gets its wake-up policy and alarm;
- ``endpoint.update:``: the update carries its DeploymentConfig (blue/green traffic shifting, auto-rollback
  alarms); the alarms sme creates exist before the update starts;
- ``gateway:``: the front door is built after the endpoint (its function may invoke only that endpoint);
- a section removed from the file removes what it made.
"""

from __future__ import annotations

import json

from sme.core.models import Desired, GatewaySpec, Observed, ScalingSpec, ScalingView, UpdateSpec
from sme.core import steps as s
from sme.core import names
from sme.core.names import scaling_policy_name, scaling_resource_id
from sme.core.steps import Plan, Step

IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack")
GATEWAY_REMOVAL_ORDER = ("usage-plan", "gateway-key", "gateway-api", "lambda", "log-group", "gateway-role")


def plan_deploy(desired: Desired, observed: Observed) -> Plan:
    notes: list[str] = []
    steps = _artifact_steps(desired, observed) + _role_steps(desired, observed)
    if not observed.model_exists:
        steps.append(s.CreateModel(name=desired.model.name, model=desired.model,
                                   why="model spec changed" if observed.endpoint else "new model"))
    if not observed.config_exists:
        steps.append(s.CreateEndpointConfig(name=desired.config.name, config=desired.config,
                                            why=_config_why(observed)))
    endpoint = _endpoint_steps(desired, observed, notes)
    live = _managed_scaling(desired, observed)
    updating = next((i for i, step in enumerate(endpoint) if isinstance(step, s.UpdateEndpoint)), None)
    if updating is not None:
        endpoint = _guarded_update(endpoint, updating, desired.scaling, desired.update, live)
        endpoint = _alarms_first(endpoint, desired.update, observed.alarms)
        steps += endpoint
    else:
        steps += endpoint + _scaling_changes(desired.scaling, live, dict(observed.wake_alarms))
        steps += _scaling_removals(desired.scaling, live)
        steps = _alarms_first(steps, desired.update, observed.alarms)
    steps += _wake_alarm_removals(desired.scaling, observed.wake_alarms)
    steps += gateway_steps(desired.gateway, observed)
    return Plan(tuple(steps), tuple(notes))


# -- artifact, role, model, endpoint config, endpoint ----------------------------------------------------
def _artifact_steps(desired: Desired, observed: Observed) -> list[Step]:
    art = desired.artifact
    if art is None:
        return []
    steps: list[Step] = []
    if not observed.bucket_exists:
        steps.append(s.CreateBucket(name=art.bucket, why="artifact bucket missing", artifact=art))
    elif observed.bucket_gap:
        steps.append(s.CreateBucket(name=art.bucket, action="update", why=f"finish: {observed.bucket_gap}",
                                    artifact=art))
    if not observed.artifact_exists:
        steps.append(s.UploadArtifact(name=art.url, why=f"{art.local_path} ({art.size / 1e6:.1f} MB) not in S3 yet",
                                      artifact=art))
    return steps


def _role_steps(desired: Desired, observed: Observed) -> list[Step]:
    role = desired.role
    if role is None:
        return []
    steps: list[Step] = []
    if not observed.role_exists:
        steps.append(s.CreateRole(name=role.name, why="role: create", role=role))
    if observed.role_policy != role.policy:
        why = "new role" if not observed.role_exists else "role policy differs from what this deploy needs"
        steps.append(s.PutRolePolicy(name=f"{role.name}/{role.policy_name}", why=why, role=role))
    return steps


def _config_why(observed: Observed) -> str:
    if observed.endpoint is None:
        return "new endpoint config"
    return f"spec differs from live config {observed.endpoint.config_name}"


def _endpoint_steps(desired: Desired, observed: Observed, notes: list[str]) -> list[Step]:
    ep = observed.endpoint
    name, config = desired.endpoint_name, desired.config.name
    wait = s.WaitEndpoint(name=name, why=f"until InService on {config}", config_name=config)
    update = s.UpdateEndpoint(name=name, why=f"{ep.config_name} -> {config}" if ep else "", config_name=config)
    if ep is None:
        return [s.CreateEndpoint(name=name, why="new endpoint", config_name=config), wait]
    if ep.status == "Failed":
        notes.append(f"endpoint {name} is Failed ({ep.failure_reason or 'no reason given'}); it will be recreated")
        return [s.DeleteEndpoint(name=name, why="endpoint is Failed"),
                s.WaitEndpointDeleted(name=name, why="until deleted"),
                s.CreateEndpoint(name=name, why="recreate after failure", config_name=config), wait]
    if ep.status in IN_PROGRESS:
        if ep.config_name == config:
            notes.append(f"endpoint {name} is already {ep.status} on {config}; waiting for it")
            return [s.WaitEndpoint(name=name, why=f"already {ep.status}", config_name=config)]
        notes.append(f"endpoint {name} is {ep.status} on {ep.config_name}; waiting before updating it")
        return [s.WaitEndpoint(name=name, why=f"{ep.status} must finish first", config_name=ep.config_name),
                update, wait]
    if ep.config_name != config:
        return [update, wait]
    return []


# -- autoscaling: and endpoint.update: -----------------------------------------------------------------
def _managed_scaling(desired: Desired, observed: Observed) -> dict[str, ScalingView]:
    """Live targets on this endpoint's variants that sme manages: asked for now, or carrying sme's policy."""
    variants = {v.name for v in desired.config.variants}
    if observed.endpoint:
        variants |= {v.name for v in observed.endpoint.variants}
    wanted = {spec.resource_id for spec in desired.scaling}
    out = {}
    for view in observed.scaling:
        variant = view.resource_id.rsplit("/", 1)[-1]
        if view.resource_id != scaling_resource_id(desired.endpoint_name, variant) or variant not in variants:
            continue
        if view.resource_id in wanted or scaling_policy_name(desired.endpoint_name, variant) in dict(view.policies):
            out[view.resource_id] = view
    return out


def _guarded_update(steps: list[Step], at: int, scaling: tuple[ScalingSpec, ...], update: UpdateSpec | None,
                    live: dict[str, ScalingView]) -> list[Step]:
    old = steps[at]
    assert isinstance(old, s.UpdateEndpoint)
    retain = bool(scaling or live)
    why = old.why + (f"; {update.summary}" if update else "") + ("; keeps scaled instance counts" if retain else "")
    guarded = s.UpdateEndpoint(name=old.name, why=why, config_name=old.config_name, retain=retain,
                               deployment_config=update.deployment_config if update else "")
    before: list[Step] = [s.DeregisterScaling(name=rid, why="scaling must not act during the update")
                          for rid in sorted(live)]
    wait_at = next((i for i in range(at + 1, len(steps)) if isinstance(steps[i], s.WaitEndpoint)), at)
    after = [step for spec in scaling for step in register(spec, "register again after the update")]
    return steps[:at] + before + [guarded] + steps[at + 1:wait_at + 1] + after + steps[wait_at + 1:]


def register(spec: ScalingSpec, why: str) -> list[Step]:
    steps: list[Step] = [
        s.RegisterScaling(name=spec.resource_id, why=f"{why}: {spec.min}-{spec.max} instances", scaling=spec),
        s.PutScalingPolicy(name=spec.policy_name, why=f"target tracking at {spec.policy_config['TargetValue']:g}",
                           scaling=spec)]
    if spec.wake:
        steps.append(_wake(spec, "new"))
    return steps


def _wake(spec: ScalingSpec, what: str) -> Step:
    assert spec.wake is not None
    return s.PutWakePolicy(name=spec.wake.policy_name, scaling=spec, action="create" if what == "new" else "update",
                           why=f"{what}: +1 instance when requests wait with none (alarm {spec.wake.alarm.name})")


def _scaling_changes(scaling: tuple[ScalingSpec, ...], live: dict[str, ScalingView],
                     wake_alarms: dict[str, str]) -> list[Step]:
    steps: list[Step] = []
    for spec in scaling:
        view = live.get(spec.resource_id)
        if view is None:
            steps += register(spec, "new scalable target")
            continue
        if (view.min, view.max) != (spec.min, spec.max):
            steps.append(s.RegisterScaling(name=spec.resource_id, action="update", scaling=spec,
                                           why=f"capacity {view.min}-{view.max} -> {spec.min}-{spec.max}"))
        policies = dict(view.policies)
        if policies.get(spec.policy_name) != spec.policy:
            steps.append(s.PutScalingPolicy(name=spec.policy_name, scaling=spec,
                                            why="new policy" if spec.policy_name not in policies else "policy changed"))
        steps += _wake_changes(spec, view, wake_alarms)
    return steps


def _wake_changes(spec: ScalingSpec, view: ScalingView, wake_alarms: dict[str, str]) -> list[Step]:
    """The wake-up policy and alarm put when missing or different (the alarm must act on the live policy's ARN),
    or the policy deleted when the variant no longer scales to zero (its alarm: ``_wake_alarm_removals``)."""
    name = names.wake_policy_name(*_endpoint_and_variant(spec.resource_id))
    policies, arns = dict(view.policies), dict(view.arns)
    if spec.wake is None:
        return [s.Delete(name=name, kind="scaling-policy", why="autoscaling.min is no longer 0",
                         extra=(("resource_id", spec.resource_id),))] if name in policies else []
    raw = wake_alarms.get(spec.wake.alarm.name)
    alarm = json.loads(raw) if raw else None
    if name not in policies or alarm is None:
        return [_wake(spec, "new")]
    actions = alarm.pop("AlarmActions")
    if (policies[name] != spec.wake.policy or json.dumps(alarm, sort_keys=True) != spec.wake.alarm.definition
            or actions != [arns.get(name)]):
        return [_wake(spec, "changed")]
    return []


def _endpoint_and_variant(resource_id: str) -> tuple[str, str]:
    _, endpoint, _, variant = resource_id.split("/", 3)
    return endpoint, variant


def _wake_alarm_removals(scaling: tuple[ScalingSpec, ...], existing: tuple[tuple[str, str], ...]) -> list[Step]:
    wanted = {spec.wake.alarm.name for spec in scaling if spec.wake}
    return [s.Delete(name=name, kind="alarm", why="the endpoint no longer scales to zero")
            for name, _ in existing if name not in wanted]


def _scaling_removals(scaling: tuple[ScalingSpec, ...], live: dict[str, ScalingView]) -> list[Step]:
    wanted = {spec.resource_id for spec in scaling}
    return [s.DeregisterScaling(name=rid, why="autoscaling removed from the experiment file")
            for rid in sorted(live) if rid not in wanted]


def _alarms_first(steps: list[Step], update: UpdateSpec | None, existing: frozenset[str]) -> list[Step]:
    """The alarms a guarded update rolls back on exist before the update starts (and before scaling lets go)."""
    wanted = [a for a in (update.alarms if update else ()) if a.name not in existing]
    if not wanted:
        return steps
    creates: list[Step] = [s.PutAlarm(name=a.name, why=a.description, alarm=a) for a in wanted]
    at = next((i for i, step in enumerate(steps) if isinstance(step, s.UpdateEndpoint)), None)
    at = len(steps) if at is None else at - sum(1 for step in steps[:at] if isinstance(step, s.DeregisterScaling))
    return steps[:at] + creates + steps[at:]


# -- gateway: --------------------------------------------------------------------------------------------
def gateway_steps(spec: GatewaySpec | None, observed: Observed) -> list[Step]:
    have = observed.gateway.have
    if spec is None:
        # removal, in teardown's order: usage plan and key before the API, the function before its role
        return [s.Delete(name=have[part], kind=part, why="gateway removed from the experiment file")
                for part in GATEWAY_REMOVAL_ORDER if part in have]
    view = observed.gateway
    steps: list[Step] = []
    for part, kind, name, purpose in _proxy_and_api(spec):
        if part not in have:
            steps.append(kind(name=name, why=f"front door: {purpose}", gateway=spec))
        elif view.gap(part):
            steps.append(kind(name=name, action="update", why=f"finish: {view.gap(part)}", gateway=spec))
        elif part == "lambda" and spec.code_sha256 and view.function_sha and spec.code_sha256 != view.function_sha:
            steps.append(s.UpdateGatewayFunction(name=name, why="the proxy's handler source changed", gateway=spec))
    limits = f"{spec.rate:g} req/s (burst {spec.burst}), {spec.quota_limit} per {spec.quota_period.lower()}"
    if "usage-plan" not in have or "gateway-key" not in have:
        steps.append(s.CreateGatewayKey(name=spec.api_name, why=f"API key; {limits}", gateway=spec))
    elif view.gap("usage-plan"):
        steps.append(s.CreateGatewayKey(name=spec.api_name, action="update", why=f"finish: {view.gap('usage-plan')}",
                                        gateway=spec))
    elif view.usage_limits and view.usage_limits != spec.usage_limits:
        steps.append(s.UpdateUsagePlan(name=have["usage-plan"], why=f"throttle/quota changed to {limits}", gateway=spec))
    return steps


def _proxy_and_api(spec: GatewaySpec) -> list[tuple[str, type, str, str]]:
    """The front door's pieces before its key, in creation order: (part, step kind, name, purpose)."""
    return [("gateway-role", s.CreateGatewayRole, spec.role_name, "may invoke only this endpoint"),
            ("log-group", s.CreateGatewayLogGroup, spec.log_group, "proxy logs"),
            ("lambda", s.CreateGatewayFunction, spec.function_name, "proxy to the endpoint"),
            ("gateway-api", s.CreateGatewayApi, spec.api_name,
             f"REST API, POST /{spec.path}, API key required, stage {spec.stage}")]


def plan_summary(plan: Plan) -> str:
    if plan.empty:
        return "no changes: the endpoint already matches the spec"
    counts: dict[str, int] = {}
    for step in plan.changes:
        counts[step.action] = counts.get(step.action, 0) + 1
    return ", ".join(f"{n} to {a}" for a, n in counts.items()) or "only waits"
