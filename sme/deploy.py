"""sme's deploy engine, wired in one place.

    experiment file + flags --load_experiment--> Experiment    (sme/config.py: inert, validated)
    Experiment --resolve--> Desired                              (sme/core/resolve.py: one typed spec per section)
    AWS --RemoteState.observe--> Observed                        (sme/core/observe.py: describe/list only)
    (Desired, Observed) --plan_deploy--> Plan                    (sme/core/planner.py: pure; sme/core/steps.py)
    records --plan_teardown--> Plan of deletions                 (sme/core/sweeper.py: pure)
    Plan --Executor(HANDLERS)--> AWS changes, each recorded      (sme/core/executor.py + sme/core/resources/)
         --DisplayExecutor--> a table, nothing changed           (a dry run, of a deploy or of a teardown)

A deploy, a plan-only deploy (``--dry-run``) and a teardown (dry or not) are configurations of one
``Pipeline`` (plan -> preflight gate -> execute), built by the factories below (chalice's
``create_default_deployer`` / ``create_plan_only_deployer`` / ``create_deletion_deployer``); nothing
registers itself on import, and the executor gets its handler table from here.

Model and endpoint-config names carry a short hash of their spec, so they are immutable versions and an
unchanged spec plans nothing; the endpoint's name is the experiment's. Every create is recorded in
``.sme/<experiment>.json`` the moment it succeeds and tagged ``sme:experiment=<name>``, so neither an
interrupted deploy nor a lost state file leaves anything untracked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sme.errors import ExitStatus

if TYPE_CHECKING:
    from sme.aws import AwsContext
    from sme.config import Experiment
    from sme.console import Env
    from sme.core.executor import ExecContext
    from sme.core.models import Desired
    from sme.core.steps import Plan
    from sme.state import DeployState

ENDPOINT_DELETE_TIMEOUT = 1800.0
ENDPOINT_DELETE_POLL = 10.0


@dataclass
class DeployOptions:
    dry_run: bool = False
    timeout: float = 1800.0
    poll: float = 15.0
    skip_preflight: bool = False
    lock_timeout: float = 0.0


@dataclass(frozen=True)
class Pipeline:
    """plan -> (preflight) -> execute. ``announce`` may stop before executing (nothing to do)."""

    plan: Callable[["AwsContext", "DeployState"], "tuple[Desired | None, Plan]"]
    gate: Callable[["AwsContext", "Desired", "Plan"], Any] | None
    executor: Callable[["ExecContext"], Any]
    announce: Callable[["Desired | None", "Plan"], bool]
    conclude: Callable[["ExecContext", "Plan"], None]
    timeout: float = 1800.0
    poll: float = 15.0

    def run(self, aws: "AwsContext", state: "DeployState", env: "Env") -> None:
        from sme.core.executor import ExecContext

        desired, plan = self.plan(aws, state)
        for note in plan.notes:
            env.info(f"note: {note}")
        if self.gate and desired is not None and not plan.empty:
            self.gate(aws, desired, plan)  # raises PreflightFailed (exit 6) before any mutating call
        if not self.announce(desired, plan):
            return
        state.region = aws.region or state.region
        ctx = ExecContext(aws=aws, state=state, env=env, desired=desired, timeout=self.timeout, poll=self.poll)
        self.executor(ctx).execute(plan)
        self.conclude(ctx, plan)


# -- the factories --------------------------------------------------------------------------------------
def create_deployer(env: "Env", exp: "Experiment", options: DeployOptions) -> Pipeline:
    from sme.core.executor import Executor
    from sme.core.planner import plan_summary
    from sme.core.resources import HANDLERS

    def announce(desired: Any, plan: "Plan") -> bool:
        if plan.empty:
            env.info(f"endpoint {desired.endpoint_name}: {plan_summary(plan)}")
            return False
        env.info(f"deploying {exp.name} to {desired.region}: {plan_summary(plan)}")
        return True

    def conclude(ctx: "ExecContext", plan: "Plan") -> None:
        assert ctx.desired is not None
        env.info(f"endpoint {ctx.desired.endpoint_name} is InService on {ctx.desired.config.name}")

    return Pipeline(deploy_planner(exp), _gate(env, env.err, options), lambda ctx: Executor(ctx, HANDLERS),
                    announce, conclude, options.timeout, options.poll)


def create_plan_only_deployer(env: "Env", exp: "Experiment", options: DeployOptions) -> Pipeline:
    from sme.core.executor import DisplayExecutor
    from sme.core.planner import plan_summary
    from sme.render import plan_table

    def conclude(ctx: "ExecContext", plan: "Plan") -> None:
        env.info(f"dry run: {plan_summary(plan)}; nothing was changed")

    return Pipeline(deploy_planner(exp), _gate(env, env.err, options),
                    lambda ctx: DisplayExecutor(lambda plan: env.out.print(plan_table(plan))),
                    lambda desired, plan: True, conclude, options.timeout, options.poll)


def create_deletion_deployer(env: "Env", name: str, *, dry_run: bool) -> Pipeline:
    from sme.core.executor import DisplayExecutor, Executor
    from sme.core.resources import HANDLERS
    from sme.render import plan_table, removals_table
    from sme.state import remove_state

    def announce(desired: Any, plan: "Plan") -> bool:
        if plan.empty:
            env.info(f"nothing to tear down for {name}")
        return not plan.empty

    def conclude(ctx: "ExecContext", plan: "Plan") -> None:
        if dry_run:
            env.info("dry run: nothing was deleted")
            return
        env.out.print(removals_table(ctx.removals))
        if not ctx.state.resources:
            remove_state(name)
            kept = [r for r in ctx.removals if r.outcome.startswith("kept")]
            env.info(f"{name}: every resource sme made is gone" if not kept else
                     f"{name}: every resource sme made is gone, but for what is kept above (not sme's alone)")

    def display(ctx: "ExecContext") -> Any:
        return DisplayExecutor(lambda plan: env.out.print(plan_table(plan, title="teardown (dry run)")))

    executor = display if dry_run else (lambda ctx: Executor(ctx, HANDLERS))
    return Pipeline(teardown_planner(env, name), None, executor, announce, conclude, ENDPOINT_DELETE_TIMEOUT,
                    ENDPOINT_DELETE_POLL)


# -- the planning stages --------------------------------------------------------------------------------
def deploy_planner(exp: "Experiment") -> Callable[["AwsContext", "DeployState"], "tuple[Desired, Plan]"]:
    def plan(aws: "AwsContext", state: "DeployState") -> "tuple[Desired, Plan]":
        from sme.core.observe import RemoteState
        from sme.core.planner import plan_deploy
        from sme.core.resolve import resolve

        aws.session  # noqa: B018 - resolves the region (or fails with a clear message) before any call
        desired = resolve(exp, aws.region or "", aws.account_id)
        observed = RemoteState(aws).observe(desired, state)
        return desired, plan_deploy(desired, observed)

    return plan


def teardown_planner(env: "Env", name: str) -> Callable[["AwsContext", "DeployState"], "tuple[None, Plan]"]:
    def plan(aws: "AwsContext", state: "DeployState") -> "tuple[None, Plan]":
        from sme.core.discover import discover
        from sme.core.resources import deletion_order
        from sme.core.sweeper import plan_teardown

        aws.session  # noqa: B018
        for item in discover(aws, name, state):
            env.info(f"found by tag (not in the state file): {item}")
        return None, plan_teardown(state, deletion_order)

    return plan


def _gate(env: "Env", console: Any, options: DeployOptions) -> Callable[..., Any] | None:
    if options.skip_preflight:
        return None
    from sme.core.preflight import gate
    from sme.render import checks_table

    return lambda aws, desired, plan: gate(aws, desired, plan, lambda checks: console.print(checks_table(checks)))


# -- the commands' entry points ------------------------------------------------------------------------
def aws_for(exp_region: str | None, profile: str | None) -> "AwsContext":
    from sme.aws import AwsContext

    return AwsContext.from_settings(profile=profile, region=exp_region)


def locked(env: "Env", experiment: str, command: str, wait: float) -> Any:
    """The experiment's lock for a command that changes it: a second one waits up to ``wait``, then refuses."""
    from sme.state import experiment_lock

    return experiment_lock(experiment, command, wait=wait, say=env.info, clock=env.clock, sleep=env.sleep)


def deploy(exp: "Experiment", options: DeployOptions, env: "Env") -> int:
    import contextlib

    from sme.state import load_state

    factory = create_plan_only_deployer if options.dry_run else create_deployer
    lock = contextlib.nullcontext() if options.dry_run else locked(env, exp.name, "deploy", options.lock_timeout)
    with lock:  # the state is read under the lock, so a run that waited sees what the other one recorded
        factory(env, exp, options).run(aws_for(exp.region, exp.profile), load_state(exp.name), env)
    return ExitStatus.OK


def teardown(name: str, region: str | None, profile: str | None, env: "Env", dry_run: bool,
             lock_timeout: float = 0.0) -> int:
    import contextlib

    from sme.state import load_state

    with contextlib.nullcontext() if dry_run else locked(env, name, "teardown", lock_timeout):
        state = load_state(name)
        create_deletion_deployer(env, name, dry_run=dry_run).run(aws_for(region or state.region or None, profile),
                                                                state, env)
    return ExitStatus.OK


def preflight(exp: "Experiment", env: "Env") -> int:
    """`sme preflight`: the checks a deploy runs first, for the plan it would carry out; changes nothing."""
    from sme.core.preflight import gate
    from sme.render import checks_table
    from sme.state import load_state

    aws = aws_for(exp.region, exp.profile)
    desired, plan = deploy_planner(exp)(aws, load_state(exp.name))
    checks = gate(aws, desired, plan, lambda found: env.out.print(checks_table(found)))
    warned = sum(1 for c in checks if c.outcome == "warn")
    env.info(f"preflight passed for {desired.endpoint_name}" + (f" with {warned} warning(s)" if warned else ""))
    return ExitStatus.OK


def status(name: str, region: str | None, profile: str | None, env: "Env", as_json: bool,
           show_secret: bool = False) -> int:
    import json

    from sme.core.observe import RemoteState
    from sme.render import status_json, status_table
    from sme.state import load_state

    state = load_state(name)
    remote = RemoteState(aws_for(region or state.region or None, profile))
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


def rollback(name: str, to: str | None, region: str | None, profile: str | None, env: "Env", *,
             timeout: float, poll: float, lock_timeout: float = 0.0) -> int:
    """`sme rollback`: a small plan (``sme.core.rollback``) through the same executor as a deploy."""
    with locked(env, name, "rollback", lock_timeout):
        return _rollback(name, to, region, profile, env, timeout=timeout, poll=poll)


def _rollback(name: str, to: str | None, region: str | None, profile: str | None, env: "Env", *,
              timeout: float, poll: float) -> int:
    from sme.core import names
    from sme.core.executor import ExecContext, Executor
    from sme.core.observe import RemoteState
    from sme.core.planner import IN_PROGRESS
    from sme.core.resources import HANDLERS
    from sme.core.rollback import choose_target, rollback_plan
    from sme.errors import DeployFailed, UserError
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
    scaling = remote.scaling([names.scaling_resource_id(name, v.name) for v in view.variants]) if view.variants else ()
    plan = rollback_plan(name, view.config_name, target, [v["VariantName"] for v in config["ProductionVariants"]],
                         scaling)
    env.info(f"rolling {name} back: {view.config_name} -> {target}")
    Executor(ExecContext(aws=aws, state=state, env=env, timeout=timeout, poll=poll), HANDLERS).execute(plan)
    live = remote.endpoint(name)
    if live is None or live.config_name != target or live.status != "InService":
        raise DeployFailed(f"rollback of {name} did not take: it is {live.status if live else 'gone'} on "
                           f"{live.config_name if live else '-'}")
    env.info(f"endpoint {name} is InService on {target} (verified)")
    return ExitStatus.OK
