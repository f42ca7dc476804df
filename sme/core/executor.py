"""The one place that changes AWS: carry out a Plan, recording each resource the moment it exists.

Handlers are registered per ``Step.op`` by the resource-kind modules (``sme.core.ops_*``). Each create
handler records its resource in the deploy state and saves it before returning, so an interrupted deploy
leaves nothing untracked (chalice #1340). ``DisplayExecutor`` renders the same plan and changes nothing:
that is ``--dry-run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sme.aws import AwsContext
from sme.console import Env
from sme.core.models import Desired, Plan, Step
from sme.state import DeployState, save_state

Handler = Callable[["ExecContext", Step], None]
HANDLERS: dict[str, Handler] = {}


def handles(op: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[op] = fn
        return fn

    return register


@dataclass
class ExecContext:
    aws: AwsContext
    state: DeployState
    env: Env
    desired: Desired | None = None
    timeout: float = 1800.0
    poll: float = 15.0
    options: dict[str, Any] = field(default_factory=dict)

    def record(self, kind: str, name: str, arn: str = "", **extra: Any) -> None:
        self.state.record(kind, name, arn, **extra)
        self.save()

    def save(self) -> None:
        if not self.state.region:
            self.state.region = self.aws.region or ""
        save_state(self.state)

    @property
    def tags(self) -> list[dict[str, str]]:
        pairs = self.desired.tags if self.desired else ()
        return [{"Key": k, "Value": v} for k, v in pairs]


class Executor:
    def __init__(self, ctx: ExecContext):
        self.ctx = ctx

    def execute(self, plan: Plan) -> None:
        _load_ops()
        for step in plan.steps:
            handler = HANDLERS.get(step.op)
            if handler is None:
                raise RuntimeError(f"no handler for plan step {step.op!r}")
            if step.mutating:
                self.ctx.env.info(f"{step.action:>8}  {step.kind} {step.name}")
            handler(self.ctx, step)


class DisplayExecutor:
    """Shows what Executor would do (the plan as a table) and changes nothing."""

    def __init__(self, env: Env):
        self.env = env

    def execute(self, plan: Plan) -> None:
        from sme.render import plan_table

        self.env.out.print(plan_table(plan))


def _load_ops() -> None:
    # importing the kind modules registers their handlers
    from sme.core import ops_iam, ops_s3, ops_sagemaker  # noqa: F401

    for name in EXTENSIONS:
        __import__(name)


# modules of later features that register more handlers (autoscaling, gateway, alarms)
EXTENSIONS: list[str] = [
    "sme.core.plan_extras", "sme.core.ops_autoscaling", "sme.core.ops_alarms", "sme.core.ops_gateway",
]
