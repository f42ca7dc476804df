"""The table of resources: for each AWS service, its step handlers and how its kinds are deleted.

One module per service (``sagemaker``, ``s3``, ``iam``, ``autoscaling``, ``alarms``, ``gateway``: the
front door's proxy, ``apigateway``: its REST API, ``notify_inbox``: a load test's SQS inbox) declares
``HANDLERS`` (step class -> handler) and ``DELETERS`` (record kind -> ``Deleter``) side by side. They are
merged here, explicitly; nothing registers itself on import. Adding a resource kind touches
``sme.core.models``/``steps``, one module here and the planner.
"""

from __future__ import annotations

from typing import Mapping

from sme.core import steps
from sme.core.executor import Deleter, ExecContext, Handler, Removal
from sme.core.resources import alarms, apigateway, autoscaling, gateway, iam, notify_inbox, s3, sagemaker

DELETERS: Mapping[str, Deleter] = {
    **apigateway.DELETERS, **gateway.DELETERS, **autoscaling.DELETERS, **alarms.DELETERS, **sagemaker.DELETERS,
    **s3.DELETERS, **iam.DELETERS, **notify_inbox.DELETERS,
}


def delete(ctx: ExecContext, step: steps.Delete) -> None:
    """Delete one recorded resource ("already gone" counts as done), then forget its record."""
    done = DELETERS[step.kind].delete(ctx, step.name, dict(step.extra))
    outcome = done if isinstance(done, str) else "deleted" if done else "already gone"
    ctx.removals.append(Removal(step.kind, step.name, outcome))
    ctx.forget(step.kind, step.name)


HANDLERS: Mapping[type[steps.Step], Handler] = {
    **s3.HANDLERS, **iam.HANDLERS, **sagemaker.HANDLERS, **autoscaling.HANDLERS, **alarms.HANDLERS,
    **gateway.HANDLERS, **apigateway.HANDLERS, steps.Delete: delete,
}


def deletion_order(kind: str) -> int | None:
    deleter = DELETERS.get(kind)
    return deleter.order if deleter else None


__all__ = ["DELETERS", "HANDLERS", "delete", "deletion_order"]
