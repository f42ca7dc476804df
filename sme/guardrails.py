"""SageMaker's blue/green traffic shifting: how many of the new fleet's instances take traffic at each step.

The rule is SageMaker's ("Deployment guardrails": all at once, canary, linear), used by the twin to route
InvokeEndpoint during an update and by the report to name each step's share:

- ALL_AT_ONCE: one step, the whole new fleet;
- CANARY: the canary (``CanarySize``), then the whole fleet ("the canary size should be less than or equal
  to 50% of the new fleet's capacity");
- LINEAR: ``LinearStepSize`` more instances at each step until the whole fleet takes traffic.

A size is ``CAPACITY_PERCENT`` of the new fleet's instances or an ``INSTANCE_COUNT``. SageMaker turns
whole instances on; the guide does not say how a percentage rounds, so sme rounds down and turns at least
one instance on.
"""

from __future__ import annotations

import math
from typing import Any


def step_instances(routing: dict[str, Any] | None, instances: int) -> list[int]:
    """The number of the new fleet's instances that take traffic after each step; the last is all of them."""
    instances = max(1, int(instances))
    kind = (routing or {}).get("Type", "ALL_AT_ONCE")
    if kind == "CANARY":
        first = _size(routing.get("CanarySize"), instances)  # type: ignore[union-attr]
        return [first, instances] if first < instances else [instances]
    if kind == "LINEAR":
        step = _size(routing.get("LinearStepSize"), instances)  # type: ignore[union-attr]
        return list(range(step, instances, step)) + [instances]
    return [instances]


def step_shares(routing: dict[str, Any] | None, instances: int) -> list[float]:
    """The share of the traffic on the new fleet after each step (0-1]: its instances on, of all of them."""
    instances = max(1, int(instances))
    return [on / instances for on in step_instances(routing, instances)]


def _size(size: dict[str, Any] | None, instances: int) -> int:
    size = size or {}
    value = float(size.get("Value") or 0)
    if size.get("Type") == "INSTANCE_COUNT":
        count = int(value)
    else:
        count = math.floor(instances * value / 100 + 1e-9)
    return max(1, min(instances, count))
