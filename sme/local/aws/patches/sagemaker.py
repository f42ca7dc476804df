"""What moto's SageMaker lacks and sme needs: UpdateEndpoint, endpoint status transitions, and replies
shaped as AWS shapes them.

AWS behaviour reproduced (DescribeEndpoint, DescribeEndpointConfig, DescribeModel API references):

- DescribeEndpointConfig and DescribeEndpoint omit ``DataCaptureConfig`` when the config captures nothing
  (moto answers ``{}``, which strict clients such as sagemaker-core refuse); when it does capture,
  DescribeEndpoint answers the summary (EnableCapture, CaptureStatus, CurrentSamplingPercentage,
  DestinationS3Uri), not the config's request form;
- DescribeEndpoint lists each variant's ``DeployedImages`` (the image specified, the image resolved to a
  digest, when it was resolved); the twin's digest is a hash of the image URI, not a registry lookup;
- DescribeModel omits ``Containers`` beside a ``PrimaryContainer``, and an empty ``VpcConfig``;
- UpdateEndpoint (moto has none) and the endpoint lifecycle below; while an update's new fleet exists in the
  twin, DescribeEndpoint carries its ``PendingDeploymentSummary`` (``sme.local.aws.guardrails``).

``install()`` patches moto's SageMaker backend in this process (moto's internals: the moto version is
pinned in pyproject.toml). ``LIFECYCLE`` decides how an endpoint moves between statuses:

- by default an endpoint is InService at once (moto's behaviour);
- ``describes_to_ready = N``: a created or updated endpoint stays Creating/Updating for N describes;
- ``hold.add(name)``: it stays Creating/Updating until ``release(name)``;
- ``fail_next[name] = reason``: its next create or update ends Failed with that FailureReason;
- ``rollback_next[name] = reason``: its next update ends InService on the *old* config, the way
  SageMaker silently rolls back a failed update;
- ``hooks``: an object with ``on_create/on_update/on_delete/on_describe(backend, endpoint)`` that backs
  endpoints with real runtimes (local mode).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_INSTALLED = False


@dataclass
class _Pending:
    remaining: int
    outcome: str  # ok | fail | rollback
    reason: str = ""
    old_config: str = ""
    old_variants: Any = None


class Lifecycle:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.describes_to_ready = 0
        self.hold: set[str] = set()
        self.fail_next: dict[str, str] = {}
        self.rollback_next: dict[str, str] = {}
        self.hooks: Any = None
        self._pending: dict[tuple[str, str, str], _Pending] = {}

    def release(self, name: str) -> None:
        self.hold.discard(name)

    def started(self, backend: Any, endpoint: Any, kind: str, old_config: str = "", old_variants: Any = None,
                deployment_config: Any = None) -> None:
        name = endpoint.endpoint_name
        with self._lock:
            outcome, reason = "ok", ""
            if name in self.fail_next:
                outcome, reason = "fail", self.fail_next.pop(name)
            elif kind == "update" and name in self.rollback_next:
                outcome, reason = "rollback", self.rollback_next.pop(name)
            steps = self.describes_to_ready
            if outcome != "ok" or name in self.hold:
                steps = max(steps, 1)
            endpoint.failure_reason = None
            if steps > 0:
                endpoint.endpoint_status = "Creating" if kind == "create" else "Updating"
                self._pending[_key(backend, name)] = _Pending(steps, outcome, reason, old_config, old_variants)
            else:
                endpoint.endpoint_status = "InService"
        if self.hooks and kind == "update":
            self.hooks.on_update(backend, endpoint, old_variants, deployment_config)
        elif self.hooks:
            self.hooks.on_create(backend, endpoint)

    def advance(self, backend: Any, endpoint: Any) -> None:
        name = endpoint.endpoint_name
        with self._lock:
            pending = self._pending.get(_key(backend, name))
            if pending is not None and name not in self.hold:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._pending[_key(backend, name)]
                    self._finish(endpoint, pending)
        if self.hooks:
            self.hooks.on_describe(backend, endpoint)

    @staticmethod
    def _finish(endpoint: Any, pending: _Pending) -> None:
        if pending.outcome == "fail":
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = pending.reason
        elif pending.outcome == "rollback":
            endpoint.endpoint_config_name = pending.old_config
            endpoint.production_variants = pending.old_variants
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = pending.reason
        else:
            endpoint.endpoint_status = "InService"

    def deleted(self, backend: Any, name: str, endpoint: Any) -> None:
        with self._lock:
            self._pending.pop(_key(backend, name), None)
        if self.hooks and endpoint is not None:
            self.hooks.on_delete(backend, endpoint)


def _key(backend: Any, name: str) -> tuple[str, str, str]:
    return (backend.account_id, backend.region_name, name)


LIFECYCLE = Lifecycle()


def install() -> None:
    """Patch moto's SageMaker backend and responses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.core.utils import utcnow

    orig_create = SageMakerModelBackend.create_endpoint
    orig_describe = SageMakerModelBackend.describe_endpoint
    orig_delete = SageMakerModelBackend.delete_endpoint

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        if endpoint_name in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        endpoint = orig_create(self, endpoint_name, endpoint_config_name, tags)
        LIFECYCLE.started(self, endpoint, "create")
        return endpoint

    def describe_endpoint(self: Any, endpoint_name: str) -> Any:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is not None:
            LIFECYCLE.advance(self, endpoint)
        return _endpoint_reply(self, endpoint, orig_describe(self, endpoint_name))

    def describe_endpoint_config_response(self: Any) -> Any:
        from moto.core.responses import ActionResult

        # the backend's own reply keeps moto's {} (CreateEndpoint reads it); only the client's loses it
        reply = dict(self.sagemaker_backend.describe_endpoint_config(self._get_param("EndpointConfigName")))
        if not reply.get("DataCaptureConfig"):
            reply.pop("DataCaptureConfig", None)
        return ActionResult(reply)

    def describe_model_response(self: Any) -> Any:
        from moto.core.responses import ActionResult

        reply = dict(self.sagemaker_backend.describe_model(self._get_param("ModelName")).response_object)
        if reply.get("PrimaryContainer") and not reply.get("Containers"):
            reply.pop("Containers", None)
        if not reply.get("VpcConfig"):
            reply.pop("VpcConfig", None)
        return ActionResult(reply)

    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        endpoint = self.endpoints.get(endpoint_name)
        orig_delete(self, endpoint_name)
        LIFECYCLE.deleted(self, endpoint_name, endpoint)

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str,
                        retain_all_variant_properties: bool = False, deployment_config: Any = None) -> Any:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
        if endpoint_config_name not in self.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
        config = self.endpoint_configs[endpoint_config_name]
        old_config, old_variants = endpoint.endpoint_config_name, endpoint.production_variants
        new_variants = endpoint._process_production_variants(config.production_variants)
        if retain_all_variant_properties:
            current = {v["VariantName"]: v for v in old_variants}
            for variant in new_variants:
                kept = current.get(variant["VariantName"])
                if kept:
                    for key in ("CurrentInstanceCount", "DesiredInstanceCount", "CurrentWeight", "DesiredWeight"):
                        if key in kept:
                            variant[key] = kept[key]
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = new_variants
        if deployment_config:
            endpoint.last_deployment_config = deployment_config
        endpoint.last_modified_time = utcnow()
        LIFECYCLE.started(self, endpoint, "update", old_config, old_variants, deployment_config)
        return endpoint

    def update_endpoint_response(self: Any) -> Any:
        from moto.core.responses import ActionResult

        endpoint = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            retain_all_variant_properties=bool(self._get_param("RetainAllVariantProperties")),
            deployment_config=self._get_param("DeploymentConfig"),
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.describe_endpoint = describe_endpoint
    SageMakerResponse.describe_endpoint_config = describe_endpoint_config_response
    SageMakerResponse.describe_model = describe_model_response
    SageMakerModelBackend.delete_endpoint = delete_endpoint
    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerResponse.update_endpoint = update_endpoint_response
    _INSTALLED = True


def _endpoint_reply(backend: Any, endpoint: Any, reply: dict[str, Any]) -> dict[str, Any]:
    """DescribeEndpoint as AWS answers it: a capture summary or none, and each variant's DeployedImages."""
    reply = dict(reply)
    config = backend.endpoint_configs.get(endpoint.endpoint_config_name) if endpoint else None
    capture = (config.data_capture_config if config else None) or {}
    reply.pop("DataCaptureConfig", None)
    if capture.get("EnableCapture", bool(capture)):
        reply["DataCaptureConfig"] = {
            "EnableCapture": True, "CaptureStatus": "Started",
            "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 100)),
            "DestinationS3Uri": capture.get("DestinationS3Uri", ""),
            **({"KmsKeyId": capture["KmsKeyId"]} if capture.get("KmsKeyId") else {})}
    variants = _with_images(backend, endpoint, config, reply.get("ProductionVariants") or [])
    if variants:
        reply["ProductionVariants"] = variants
    pending = getattr(LIFECYCLE.hooks, "pending_deployment", None)
    summary = pending(backend.account_id, backend.region_name, endpoint.endpoint_name) if pending and endpoint else None
    if summary:
        new_config = backend.endpoint_configs.get(summary["EndpointConfigName"])
        reply["PendingDeploymentSummary"] = {
            **summary, "ProductionVariants": _with_images(backend, endpoint, new_config, summary["ProductionVariants"])}
    return reply


def _with_images(backend: Any, endpoint: Any, config: Any, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each variant with its DeployedImages, from the config's models."""
    models = {v["VariantName"]: v.get("ModelName") for v in (config.production_variants if config else [])}
    out = []
    for variant in variants:
        model = backend._models.get(models.get(variant.get("VariantName")))
        image = ((model.primary_container or {}).get("Image") if model else None)
        if image:
            variant = {**variant, "DeployedImages": [{
                "SpecifiedImage": image, "ResolvedImage": _resolved(image),
                "ResolutionTime": endpoint.last_modified_time}]}
        out.append(variant)
    return out


def _resolved(image: str) -> str:
    """repo:tag -> repo@sha256:<digest> (a digest already given stays as it is)."""
    import hashlib

    if "@" in image:
        return image
    name = image.rsplit("/", 1)[-1]
    repo = image.rsplit(":", 1)[0] if ":" in name else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
