"""Inert data: what the user wants (Desired), what AWS has (Observed), and what to do (Step, Plan).

No behaviour lives here: the planner turns (Desired, Observed) into a Plan; the executor carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXPERIMENT_TAG = "sme:experiment"


@dataclass(frozen=True)
class DesiredArtifact:
    """A local model.tar.gz to upload under a content-hash key."""

    local_path: str
    bucket: str
    key: str
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class DesiredRole:
    name: str
    arn: str
    path: str
    trust_policy: str  # JSON
    policy_name: str
    policy: str  # JSON


@dataclass(frozen=True)
class DesiredModel:
    name: str
    image: str
    model_data_url: str
    role_arn: str
    environment: tuple[tuple[str, str], ...]
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    network_isolation: bool


@dataclass(frozen=True)
class DesiredVariant:
    name: str
    instance_type: str
    count: int
    weight: float


@dataclass(frozen=True)
class DesiredConfig:
    name: str
    model_name: str
    variants: tuple[DesiredVariant, ...]


@dataclass(frozen=True)
class Desired:
    experiment: str
    region: str
    endpoint_name: str
    model: DesiredModel
    config: DesiredConfig
    artifact: DesiredArtifact | None = None
    role: DesiredRole | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # later features (autoscaling, guarded updates, gateway) hang their desired state here
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class VariantView:
    name: str
    current_instances: int | None
    desired_instances: int | None
    current_weight: float | None = None


@dataclass(frozen=True)
class EndpointView:
    name: str
    status: str
    config_name: str
    failure_reason: str | None = None
    variants: tuple[VariantView, ...] = ()
    arn: str = ""


@dataclass(frozen=True)
class Observed:
    bucket_exists: bool = False
    artifact_exists: bool = False
    role_exists: bool = False
    role_policy: str | None = None
    model_exists: bool = False
    config_exists: bool = False
    endpoint: EndpointView | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Step:
    """One instruction: `op` selects the executor's handler; action/kind/name/why are for people."""

    op: str
    action: str
    kind: str
    name: str
    why: str
    params: Any = None
    mutating: bool = True


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.mutating)
