"""The one place that changes AWS: carry out a Plan with the handler table it is given.

The table (``sme.core.resources.HANDLERS``: step class -> handler) is passed in by whoever wires the
engine (``sme.deploy``), so the executor does not grow when a resource kind is added. Each create handler
records its resource in the deploy state and saves it before returning, so an interrupted deploy leaves
nothing untracked (a failed deploy that records nothing orphans what it made). ``DisplayExecutor`` renders
the same plan and changes nothing: that is a dry run, of a deploy or of a teardown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sme.aws import AwsContext
from sme.console import Env
from sme.core.models import Desired
from sme.core.steps import Plan, Step
from sme.state import DeployState, save_state

Handler = Callable[["ExecContext", Any], None]


@dataclass(frozen=True)
class Removal:
    kind: str
    name: str
    outcome: str  # deleted | already gone | kept: why


@dataclass(frozen=True)
class Deleter:
    """How one kind of recorded resource is deleted, and when: lower ``order`` goes first in a teardown.
    ``delete(ctx, name, extra)`` returns True when it deleted it, False when it was already gone, or what it
    did instead ("kept: ...")."""

    order: int
    delete: Callable[["ExecContext", str, dict[str, Any]], "bool | str"]


@dataclass
class ExecContext:
    aws: AwsContext
    state: DeployState
    env: Env
    desired: Desired | None = None
    timeout: float = 1800.0
    poll: float = 15.0
    removals: list[Removal] = field(default_factory=list)  # what Delete steps did, in order

    def record(self, kind: str, name: str, arn: str = "", **extra: Any) -> None:
        self.state.record(kind, name, arn, **extra)
        self.save()

    def forget(self, kind: str, name: str) -> None:
        self.state.forget(kind, name)
        self.save()

    def save(self) -> None:
        if not self.state.region:
            self.state.region = self.aws.region or ""
        save_state(self.state)

    @property
    def tags(self) -> list[dict[str, str]]:
        return self.desired.tag_list if self.desired else []

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.desired.tags) if self.desired else {}


class Executor:
    def __init__(self, ctx: ExecContext, handlers: Mapping[type[Step], Handler]):
        self.ctx = ctx
        self.handlers = handlers

    def execute(self, plan: Plan) -> None:
        for step in plan.steps:
            handler = self.handlers.get(type(step))
            if handler is None:
                raise RuntimeError(f"no handler for plan step {step.op!r}")
            if step.mutating:
                self.ctx.env.info(f"{step.action:>8}  {step.kind} {step.name}")
            handler(self.ctx, step)


class DisplayExecutor:
    """Shows what Executor would do (``show`` renders the plan) and changes nothing."""

    def __init__(self, show: Callable[[Plan], None]):
        self.show = show

    def execute(self, plan: Plan) -> None:
        self.show(plan)
