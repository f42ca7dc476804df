"""`sme rollback`: point the endpoint back at the previous (or a named) endpoint config from the history.

The history is ``state.endpoint_configs`` (every config the endpoint was pointed at, newest last). The
rollback is a small plan run by the same executor as a deploy: deregister scaling -> UpdateEndpoint
(keeping scaled instance counts) -> wait -> register the same scaling again; the wait verifies that the
endpoint is InService on the config asked for (SageMaker may itself roll an update back).
"""

from __future__ import annotations

from typing import Any

from sme.errors import UserError


def choose_target(history: list[dict[str, Any]], live: str, to: str | None) -> str:
    """The config to return to. Pure: the recorded history, the live config and --to."""
    names = [h["name"] for h in history]
    if to:
        if to not in names:
            listed = ", ".join(names) or "none"
            raise UserError(f"{to} is not in this endpoint's recorded history (recorded: {listed})",
                            hint="pass one of the recorded configs to --to, or omit --to for the previous one")
        return to
    upto = len(names) - 1 - names[::-1].index(live) if live in names else len(names)
    earlier = [n for n in names[:upto] if n != live]
    if not earlier:
        raise UserError(f"no config before {live} is recorded for this endpoint",
                        hint="rollback needs an earlier deploy of the same experiment from this state file")
    return earlier[-1]


def rollback(name: str, to: str | None, region: str | None, profile: str | None, env: Any, *,
             timeout: float, poll: float) -> int:
    from sme.core.executor import ExecContext, Executor
    from sme.core.models import Plan
    from sme.core.planner import IN_PROGRESS
    from sme.core.remote import RemoteState
    from sme.deploy import aws_for, load_extensions
    from sme.errors import ExitStatus
    from sme.state import load_state

    state = load_state(name, must_exist=True)
    aws = aws_for(region or state.region or None, profile)
    remote = RemoteState(aws)
    view = remote.endpoint(name)
    if view is None:
        raise UserError(f"endpoint {name} does not exist", hint=f"deploy it with `sme deploy --name {name}`")
    if view.status in IN_PROGRESS:
        raise UserError(f"endpoint {name} is {view.status}", hint="wait until it is InService, then roll back")
    target = choose_target(state.endpoint_configs, view.config_name, to)
    if target == view.config_name:
        env.info(f"endpoint {name} is already on {target}; nothing to do")
        return ExitStatus.OK
    config = remote.describe_endpoint_config(target)
    if config is None:
        raise UserError(f"endpoint config {target} no longer exists in AWS",
                        hint="pass an older config with --to, or redeploy that spec with `sme deploy`")
    load_extensions()
    plan = Plan(tuple(rollback_steps(aws, name, view, target, [v["VariantName"] for v in config["ProductionVariants"]])))
    env.info(f"rolling {name} back: {view.config_name} -> {target}")
    ctx = ExecContext(aws=aws, state=state, env=env, timeout=timeout, poll=poll)
    Executor(ctx).execute(plan)
    live = remote.endpoint(name)
    if live is None or live.config_name != target or live.status != "InService":
        from sme.errors import DeployFailed

        raise DeployFailed(f"rollback of {name} did not take: it is {live.status if live else 'gone'} on "
                           f"{live.config_name if live else '-'}")
    env.info(f"endpoint {name} is InService on {target} (verified)")
    return ExitStatus.OK


def rollback_steps(aws: Any, name: str, view: Any, target: str, target_variants: list[str]) -> list[Any]:
    """Deregister scaling, update, wait, then register the same scaling on the variants that remain."""
    from sme.core.extras import ScalingSpec, resource_id
    from sme.core.models import Step
    from sme.core.plan_extras import UpdateCall
    from sme.core.remote_extras import scaling_views

    scaling = scaling_views(aws, [resource_id(name, v.name) for v in view.variants]) if view.variants else ()
    steps = [Step("deregister_scaling", "remove", "scalable-target", s.resource_id,
                  "scaling must not act during the rollback", s.resource_id) for s in scaling]
    steps += [Step("update_endpoint_guarded", "update", "endpoint", name, f"{view.config_name} -> {target} (rollback)",
                   UpdateCall(target, bool(scaling), "")),
              Step("wait_endpoint", "wait", "endpoint", name, f"until InService on {target}", target, mutating=False)]
    for s in scaling:
        variant = s.resource_id.rsplit("/", 1)[-1]
        if variant not in target_variants:
            continue
        for policy, config in s.policies or (("", ""),):
            spec = ScalingSpec(variant, s.resource_id, s.min, s.max, policy, config)
            steps.append(Step("register_scaling", "register", "scalable-target", s.resource_id,
                              f"restore {s.min}-{s.max} instances", spec))
            if policy:
                steps.append(Step("put_scaling_policy", "update", "scaling-policy", policy, "restore", spec))
    return steps
