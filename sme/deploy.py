"""sme's deploy pipeline, in one screen.

    experiment file + flags --load_experiment--> Experiment      (sme/config.py: inert, validated)
    Experiment --resolve--> Desired                                (sme/core/resolve.py: names carry spec hashes)
    AWS --RemoteState.observe--> Observed                          (sme/core/remote.py: describe/list only)
    (Desired, Observed) --plan_deploy--> Plan                      (sme/core/planner.py: pure)
    Plan --Executor--> AWS changes, each recorded at once          (sme/core/executor.py + ops_*.py)
         --DisplayExecutor--> a table, nothing changed             (--dry-run)
    state --sweep--> deletions in dependency order                 (sme/core/sweeper.py: teardown)

Model and endpoint-config names carry a short hash of their spec, so they are immutable versions and
an unchanged spec plans nothing; the endpoint's name is the experiment's. Every create is recorded in
``.sme/<experiment>.json`` the moment it succeeds and tagged ``sme:experiment=<name>``, so neither an
interrupted deploy nor a lost state file leaves anything untracked. Later features plug in through
``sme.core.executor.EXTENSIONS`` (handlers, kinds) and ``PLAN_HOOKS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sme.aws import AwsContext
from sme.config import Experiment
from sme.console import Env
from sme.core.models import Desired, Observed, Plan
from sme.errors import ExitStatus

# (aws, desired, observed, plan) -> plan : later features extend the base plan (autoscaling, gateway, ...)
PLAN_HOOKS: list[Callable[[Any, Desired, Observed, Plan], Plan]] = []


@dataclass
class DeployOptions:
    dry_run: bool = False
    timeout: float = 1800.0
    poll: float = 15.0
    skip_preflight: bool = False


def aws_for(exp_region: str | None, profile: str | None) -> AwsContext:
    return AwsContext.from_settings(profile=profile, region=exp_region)


def make_plan(aws: AwsContext, exp: Experiment) -> tuple[Desired, Plan]:
    from sme.core.planner import plan_deploy
    from sme.core.remote import RemoteState
    from sme.core.resolve import resolve

    aws.session  # noqa: B018 - resolves the region (or fails with a clear message) before any call
    desired = resolve(exp, aws.region or "", aws.account_id)
    observed = RemoteState(aws).observe(desired)
    plan = plan_deploy(desired, observed)
    load_extensions()
    for hook in PLAN_HOOKS:
        plan = hook(aws, desired, observed, plan)
    return desired, plan


def load_extensions() -> None:
    """Import the feature modules listed in EXTENSIONS: they register handlers, kinds and PLAN_HOOKS."""
    import importlib

    from sme.core.executor import EXTENSIONS

    for name in EXTENSIONS:
        importlib.import_module(name)


def deploy(exp: Experiment, options: DeployOptions, env: Env) -> int:
    from sme.core.executor import DisplayExecutor, ExecContext, Executor
    from sme.core.planner import plan_summary
    from sme.state import load_state

    aws = aws_for(exp.region, exp.profile)
    desired, plan = make_plan(aws, exp)
    for note in plan.notes:
        env.info(f"note: {note}")
    if not plan.empty and not options.skip_preflight:
        from sme.core.preflight import gate

        gate(aws, desired, plan, env)  # raises PreflightFailed (exit 6) before any mutating call
    if options.dry_run:
        DisplayExecutor(env).execute(plan)
        env.info(f"dry run: {plan_summary(plan)}; nothing was changed")
        return ExitStatus.OK
    if plan.empty:
        env.info(f"endpoint {desired.endpoint_name}: {plan_summary(plan)}")
        return ExitStatus.OK
    env.info(f"deploying {exp.name} to {aws.region}: {plan_summary(plan)}")
    state = load_state(exp.name)
    state.region = aws.region or ""
    ctx = ExecContext(aws=aws, state=state, env=env, desired=desired, timeout=options.timeout, poll=options.poll)
    Executor(ctx).execute(plan)
    env.info(f"endpoint {desired.endpoint_name} is InService on {desired.config.name}")
    return ExitStatus.OK


def status(name: str, region: str | None, profile: str | None, env: Env, as_json: bool,
           show_secret: bool = False) -> int:
    import json

    from sme.core.remote import RemoteState
    from sme.render import status_json, status_table
    from sme.state import load_state

    state = load_state(name)
    aws = aws_for(region or state.region or None, profile)
    remote = RemoteState(aws)
    view = remote.endpoint(name)
    config = remote.describe_endpoint_config(view.config_name) if view else None
    outputs = dict(state.outputs)
    if "api_key" in state.secrets:
        outputs["api_key"] = state.secrets["api_key"] if show_secret else "(hidden; --show-secret prints it)"
    if as_json:
        env.out.print_json(json.dumps(status_json(view, config, outputs)))
    else:
        env.out.print(status_table(view, config, outputs))
    return ExitStatus.OK


def teardown(name: str, region: str | None, profile: str | None, env: Env, dry_run: bool) -> int:
    from sme.core.discover import discover
    from sme.core.sweeper import sweep
    from sme.render import removals_table
    from sme.state import load_state, remove_state, save_state

    state = load_state(name)
    aws = aws_for(region or state.region or None, profile)
    aws.session  # noqa: B018
    found = discover(aws, name, state)
    for item in found:
        env.info(f"found by tag (not in the state file): {item}")
    if not state.resources:
        env.info(f"nothing to tear down for {name}")
        return ExitStatus.OK
    removals = sweep(aws, env, state, dry_run=dry_run, on_removed=lambda: save_state(state))
    env.out.print(removals_table(removals))
    if dry_run:
        env.info("dry run: nothing was deleted")
    elif not state.resources:
        remove_state(name)
        env.info(f"{name}: every resource sme made is gone")
    return ExitStatus.OK
