"""Every kind of step a plan can hold, declared once, each with typed parameters.

A step says what to do to one resource (``kind``, ``name``), in words for people (``action``, ``why``), and
carries what its handler needs. The executor finds a step's handler by its class in the table it is
given (``sme.core.resources.HANDLERS``); ``op`` is the class's name in snake case, for tables and tests.
Steps are inert: frozen, no behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from sme.core.models import (AlarmSpec, DesiredArtifact, DesiredConfig, DesiredModel, DesiredRole, GatewaySpec,
                             ScalingSpec)


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    why: str = ""
    action: str = "create"
    kind: str = ""
    mutating: ClassVar[bool] = True

    @property
    def op(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()


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


# -- S3 -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CreateBucket(Step):
    kind: str = "bucket"
    artifact: DesiredArtifact


@dataclass(frozen=True, kw_only=True)
class UploadArtifact(Step):
    kind: str = "artifact"
    action: str = "upload"
    artifact: DesiredArtifact


# -- IAM ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CreateRole(Step):
    kind: str = "role"
    role: DesiredRole


@dataclass(frozen=True, kw_only=True)
class PutRolePolicy(Step):
    kind: str = "role-policy"
    action: str = "update"
    role: DesiredRole


# -- SageMaker ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CreateModel(Step):
    kind: str = "model"
    model: DesiredModel


@dataclass(frozen=True, kw_only=True)
class CreateEndpointConfig(Step):
    kind: str = "endpoint-config"
    config: DesiredConfig


@dataclass(frozen=True, kw_only=True)
class CreateEndpoint(Step):
    kind: str = "endpoint"
    config_name: str


@dataclass(frozen=True, kw_only=True)
class UpdateEndpoint(Step):
    """UpdateEndpoint to ``config_name``; ``retain`` keeps scaled instance counts, ``deployment_config`` (JSON,
    or "" for SageMaker's default) is the blue/green policy of ``endpoint.update:``."""

    kind: str = "endpoint"
    action: str = "update"
    config_name: str
    retain: bool = False
    deployment_config: str = ""


@dataclass(frozen=True, kw_only=True)
class DeleteEndpoint(Step):
    """A Failed endpoint, deleted to be created again (its record stays)."""

    kind: str = "endpoint"
    action: str = "delete"


@dataclass(frozen=True, kw_only=True)
class WaitEndpoint(Step):
    kind: str = "endpoint"
    action: str = "wait"
    config_name: str  # the config it must be InService on ("" for any)
    mutating: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class WaitEndpointDeleted(Step):
    kind: str = "endpoint"
    action: str = "wait"
    mutating: ClassVar[bool] = False


# -- Application Auto Scaling, CloudWatch ---------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RegisterScaling(Step):
    kind: str = "scalable-target"
    action: str = "register"
    scaling: ScalingSpec


@dataclass(frozen=True, kw_only=True)
class PutScalingPolicy(Step):
    kind: str = "scaling-policy"
    action: str = "update"
    scaling: ScalingSpec


@dataclass(frozen=True, kw_only=True)
class PutWakePolicy(Step):
    """The step-scaling policy that wakes an asynchronous endpoint from zero, then its alarm on
    HasBacklogWithoutCapacity (which names the policy's ARN, so both are put together)."""

    kind: str = "scaling-policy"
    scaling: ScalingSpec


@dataclass(frozen=True, kw_only=True)
class DeregisterScaling(Step):
    """Delete a scalable target's policies, then the target (``name`` is its resource id)."""

    kind: str = "scalable-target"
    action: str = "remove"


@dataclass(frozen=True, kw_only=True)
class PutAlarm(Step):
    kind: str = "alarm"
    alarm: AlarmSpec


# -- the front door: IAM, CloudWatch Logs, Lambda, API Gateway ----------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CreateGatewayRole(Step):
    kind: str = "gateway-role"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class CreateGatewayLogGroup(Step):
    kind: str = "log-group"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class CreateGatewayFunction(Step):
    kind: str = "lambda"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class UpdateGatewayFunction(Step):
    kind: str = "lambda"
    action: str = "update"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class CreateGatewayApi(Step):
    kind: str = "gateway-api"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class CreateGatewayKey(Step):
    """The API key and the usage plan that carries its limits."""

    kind: str = "usage-plan"
    gateway: GatewaySpec


@dataclass(frozen=True, kw_only=True)
class UpdateUsagePlan(Step):
    kind: str = "usage-plan"
    action: str = "update"
    gateway: GatewaySpec


# -- any kind -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Delete(Step):
    """Delete one recorded resource of any kind, and forget its record: teardown, or a section removed from
    the experiment file. ``extra`` is the record's extra fields (an artifact's bucket and key, ...)."""

    action: str = "delete"
    extra: tuple[tuple[str, Any], ...] = ()
