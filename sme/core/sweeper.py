"""Teardown as a sweep: a plan that deletes everything recorded (or found by its sme:experiment tag), in
dependency order. Pure: the records in, a Plan of ``Delete`` steps out.

The plan runs through the same executor as a deploy, so a dry-run teardown shows exactly what a real one
does; "already gone" counts as success, so a sweep is idempotent.
"""

from __future__ import annotations

from typing import Callable

from sme.core.steps import Delete, Plan
from sme.state import DeployState


def plan_teardown(state: DeployState, order: Callable[[str], int | None]) -> Plan:
    """``order(kind)``: when a kind is deleted (lower first), or None for a kind sme cannot delete."""
    known = [r for r in state.resources if order(r.kind) is not None]
    records = sorted(known, key=lambda r: (order(r.kind), -r.created_at))
    notes = tuple(f"kept {r.kind} {r.name}: sme does not know how to delete this kind"
                  for r in state.resources if order(r.kind) is None)
    notes += tuple(sorted({f"async results under {r.extra['async_output']} are yours: teardown leaves them"
                           for r in state.resources if r.kind == "endpoint-config" and r.extra.get("async_output")}))
    steps = tuple(Delete(name=r.name, kind=r.kind, why="teardown", extra=tuple(sorted(r.extra.items())))
                  for r in records)
    return Plan(steps, notes)
