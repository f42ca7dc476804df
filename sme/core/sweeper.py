"""Teardown as a sweep: everything recorded (or found by its sme:experiment tag) is deleted, in order.

"Already gone" counts as success, so a sweep is idempotent. Kinds register how they are deleted and
in what order; later features (autoscaling, alarms, gateway) add their own kinds to ``KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sme.state import DeployState, ResourceRecord


@dataclass(frozen=True)
class Kind:
    name: str
    order: int  # lower is deleted first
    delete: Callable[[Any, ResourceRecord], bool]  # True: deleted; False: already gone


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind


@dataclass(frozen=True)
class Removal:
    kind: str
    name: str
    outcome: str  # deleted | already gone | would delete | kept


def sweep(aws: Any, env: Any, state: DeployState, *, dry_run: bool, on_removed: Callable[[], None]) -> list[Removal]:
    _load_kinds()
    records = sorted(state.resources, key=lambda r: (KINDS[r.kind].order if r.kind in KINDS else 50,
                                                     -r.created_at))
    done: list[Removal] = []
    for rec in records:
        kind = KINDS.get(rec.kind)
        if kind is None:
            done.append(Removal(rec.kind, rec.name, "kept (unknown kind)"))
            continue
        if dry_run:
            done.append(Removal(rec.kind, rec.name, "would delete"))
            continue
        deleted = kind.delete(aws, rec)
        done.append(Removal(rec.kind, rec.name, "deleted" if deleted else "already gone"))
        state.forget(rec.kind, rec.name)
        on_removed()
    return done


def _load_kinds() -> None:
    from sme.core import kinds  # noqa: F401  (registers the base kinds)
    from sme.core.executor import EXTENSIONS

    for name in EXTENSIONS:
        __import__(name)
