"""`sme rollback`: point the endpoint back at the previous (or a named) endpoint config from the history.

The history is ``state.endpoint_configs`` (every config the endpoint was pointed at, newest last). The
rollback is a small pure plan run by the same executor as a deploy (wired in ``sme.deploy``): deregister
scaling -> UpdateEndpoint (keeping scaled instance counts) -> wait -> register the same scaling again; the
wait verifies that the endpoint is InService on the config asked for (SageMaker may itself roll back).
"""

from __future__ import annotations

from typing import Any

from sme.core import steps
from sme.core.models import ScalingSpec, ScalingView
from sme.core.steps import Plan, Step
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


def rollback_plan(name: str, live_config: str, target: str, target_variants: list[str],
                  scaling: tuple[ScalingView, ...]) -> Plan:
    """Deregister scaling, update (keeping scaled counts), wait, then register the same scaling again on the
    variants the target config has. Pure."""
    out: list[Step] = [steps.DeregisterScaling(name=v.resource_id, why="scaling must not act during the rollback")
                       for v in scaling]
    out += [steps.UpdateEndpoint(name=name, why=f"{live_config} -> {target} (rollback)", config_name=target,
                                 retain=bool(scaling)),
            steps.WaitEndpoint(name=name, why=f"until InService on {target}", config_name=target)]
    for view in scaling:
        variant = view.resource_id.rsplit("/", 1)[-1]
        if variant not in target_variants:
            continue
        for policy, config in view.policies or (("", ""),):
            spec = ScalingSpec(variant, view.resource_id, view.min, view.max, policy, config)
            out.append(steps.RegisterScaling(name=view.resource_id, why=f"restore {view.min}-{view.max} instances",
                                             scaling=spec))
            if policy:
                out.append(steps.PutScalingPolicy(name=policy, why="restore", scaling=spec))
    return Plan(tuple(out))
