"""The pure planner: (Desired, Observed) -> Plan. It reads nothing and changes nothing.

Unlike chalice, which always plans an update, sme diffs: an UpdateEndpoint replaces a fleet, so when
nothing changed the plan is empty and the executor makes no mutating call.
"""

from __future__ import annotations

from sme.core.models import Desired, Observed, Plan, Step

IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack")


def plan_deploy(desired: Desired, observed: Observed) -> Plan:
    steps: list[Step] = []
    notes: list[str] = []
    steps += _artifact_steps(desired, observed)
    steps += _role_steps(desired, observed)
    if not observed.model_exists:
        steps.append(Step("create_model", "create", "model", desired.model.name,
                          "model spec changed" if observed.endpoint else "new model", desired.model))
    if not observed.config_exists:
        steps.append(Step("create_endpoint_config", "create", "endpoint-config", desired.config.name,
                          _config_why(desired, observed), desired.config))
    steps += _endpoint_steps(desired, observed, notes)
    return Plan(tuple(steps), tuple(notes))


def _artifact_steps(desired: Desired, observed: Observed) -> list[Step]:
    art = desired.artifact
    if art is None:
        return []
    steps = []
    if not observed.bucket_exists:
        steps.append(Step("create_bucket", "create", "bucket", art.bucket, "artifact bucket missing", art))
    if not observed.artifact_exists:
        size_mb = art.size / 1e6
        steps.append(Step("upload_artifact", "upload", "artifact", art.url,
                          f"{art.local_path} ({size_mb:.1f} MB) not in S3 yet", art))
    return steps


def _role_steps(desired: Desired, observed: Observed) -> list[Step]:
    role = desired.role
    if role is None:
        return []
    steps = []
    if not observed.role_exists:
        steps.append(Step("create_role", "create", "role", role.name, "role: create", role))
    if observed.role_policy != role.policy:
        why = "new role" if not observed.role_exists else "role policy differs from what this deploy needs"
        steps.append(Step("put_role_policy", "update", "role-policy", f"{role.name}/{role.policy_name}", why, role))
    return steps


def _config_why(desired: Desired, observed: Observed) -> str:
    if observed.endpoint is None:
        return "new endpoint config"
    return f"spec differs from live config {observed.endpoint.config_name}"


def _endpoint_steps(desired: Desired, observed: Observed, notes: list[str]) -> list[Step]:
    ep = observed.endpoint
    name, config = desired.endpoint_name, desired.config.name
    wait = Step("wait_endpoint", "wait", "endpoint", name, f"until InService on {config}", config, mutating=False)
    if ep is None:
        return [Step("create_endpoint", "create", "endpoint", name, "new endpoint", config), wait]
    if ep.status == "Failed":
        notes.append(f"endpoint {name} is Failed ({ep.failure_reason or 'no reason given'}); it will be recreated")
        return [Step("delete_endpoint", "delete", "endpoint", name, "endpoint is Failed", None),
                Step("wait_endpoint_deleted", "wait", "endpoint", name, "until deleted", None, mutating=False),
                Step("create_endpoint", "create", "endpoint", name, "recreate after failure", config), wait]
    if ep.status in IN_PROGRESS:
        if ep.config_name == config:
            notes.append(f"endpoint {name} is already {ep.status} on {config}; waiting for it")
            return [Step("wait_endpoint", "wait", "endpoint", name, f"already {ep.status}", config, mutating=False)]
        notes.append(f"endpoint {name} is {ep.status} on {ep.config_name}; waiting before updating it")
        return [Step("wait_endpoint", "wait", "endpoint", name, f"{ep.status} must finish first", ep.config_name,
                     mutating=False),
                Step("update_endpoint", "update", "endpoint", name, f"{ep.config_name} -> {config}", config), wait]
    if ep.config_name != config:
        return [Step("update_endpoint", "update", "endpoint", name, f"{ep.config_name} -> {config}", config), wait]
    return []


def plan_summary(plan: Plan) -> str:
    if plan.empty:
        return "no changes: the endpoint already matches the spec"
    counts: dict[str, int] = {}
    for step in plan.changes:
        counts[step.action] = counts.get(step.action, 0) + 1
    return ", ".join(f"{n} to {a}" for a, n in counts.items()) or "only waits"
