"""Endpoint kinds in the experiment file: a variant is provisioned (``instance_type``, ``count``) or
serverless (``serverless:``), and an endpoint may be asynchronous (``endpoint.async:``).

The schema pieces here are part of ``sme.config``'s schema; ``check_kinds`` applies the rules across fields
that SageMaker enforces (CreateEndpointConfig's limits), so a file AWS would refuse is refused before any call,
with the field named (exit 2). Inert values and pure checks only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sme.errors import ConfigError

S3_PATH = {"type": "string", "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\x00-\x1f]*)?$",
           "x-hint": "an s3://bucket/prefix/ URI"}
SNS_ARN = {"type": "string", "pattern": r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$",
           "x-hint": "an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:my-topic"}

SERVERLESS_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["memory_mb", "max_concurrency"],
    "description": "set serverless.memory_mb and serverless.max_concurrency",
    "properties": {
        "memory_mb": {"type": "integer", "enum": [1024, 2048, 3072, 4096, 5120, 6144],
                      "x-hint": "SageMaker Serverless memory: 1024 to 6144 MB in steps of 1024"},
        "max_concurrency": {"type": "integer", "minimum": 1, "maximum": 200,
                            "x-hint": "1 to 200 concurrent invocations"},
        "provisioned_concurrency": {"type": "integer", "minimum": 1, "maximum": 200,
                                    "x-hint": "1 to 200, and at most max_concurrency"},
    },
}

ASYNC_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["output"],
    "description": "set endpoint.async.output (the S3 prefix results are written to)",
    "properties": {
        "output": S3_PATH,
        "failure": S3_PATH,
        "max_concurrent_per_instance": {"type": "integer", "minimum": 1, "maximum": 1000},
        "notify": {"type": "object", "additionalProperties": False,
                   "properties": {"success": SNS_ARN, "error": SNS_ARN}},
    },
}

@dataclass(frozen=True)
class Serverless:
    memory_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None = None


@dataclass(frozen=True)
class AsyncInference:
    output: str
    failure: str | None = None
    max_concurrent_per_instance: int | None = None
    success_topic: str | None = None
    error_topic: str | None = None


def serverless_of(raw: dict[str, Any] | None) -> Serverless | None:
    if raw is None:
        return None
    return Serverless(int(raw["memory_mb"]), int(raw["max_concurrency"]), raw.get("provisioned_concurrency"))


def async_of(raw: dict[str, Any] | None) -> AsyncInference | None:
    if raw is None:
        return None
    notify = raw.get("notify") or {}
    return AsyncInference(raw["output"], raw.get("failure"), raw.get("max_concurrent_per_instance"),
                          notify.get("success"), notify.get("error"))


def check_kinds(data: dict[str, Any], source: str) -> None:
    """SageMaker's rules across fields for serverless and asynchronous endpoints (the schema has checked each
    field's own range)."""
    variants = data["endpoint"]["variants"]
    serverless = [i for i, v in enumerate(variants) if v.get("serverless") is not None]
    if not serverless:
        check_async_scaling(data, source)
    for i, v in enumerate(variants):
        if i not in serverless and not v.get("instance_type"):
            raise ConfigError(source, f"endpoint.variants[{i}].instance_type", "is required",
                              hint="set instance_type (or pass --instance-type), or make the variant serverless:")
    if not serverless:
        return
    first = f"endpoint.variants[{serverless[0]}]"
    spec = variants[serverless[0]]["serverless"]
    rules = [
        (len(variants) > 1, "endpoint.variants", "a serverless endpoint has exactly one variant",
         "deploy the other variants as another experiment"),
        (bool(variants[serverless[0]].get("instance_type")), f"{first}.instance_type",
         "a serverless variant has no instance type (Serverless Inference picks CPU capacity itself; it has no "
         "GPUs)", "remove instance_type (and count) from the variant"),
        (spec.get("provisioned_concurrency", 0) > spec["max_concurrency"], f"{first}.serverless.provisioned_concurrency",
         f"{spec.get('provisioned_concurrency')} is above max_concurrency {spec['max_concurrency']}",
         "make provisioned_concurrency <= max_concurrency"),
        (bool((data.get("network") or {}).get("subnets")), "network.subnets",
         "SageMaker Serverless Inference does not run in a VPC", "remove the network: section, or use instances"),
        (bool((data.get("network") or {}).get("network_isolation")), "network.network_isolation",
         "SageMaker Serverless Inference does not support network isolation", "remove network_isolation"),
        (data["endpoint"].get("async") is not None, "endpoint.async",
         "an asynchronous endpoint runs on instances, not serverless", "remove async:, or give the variant "
         "instance_type and count"),
        (bool(data.get("autoscaling")), "autoscaling",
         "a serverless variant scales itself (up to max_concurrency)", "remove autoscaling:"),
        (data["endpoint"].get("update") is not None, "endpoint.update",
         "SageMaker's blue/green guarded updates apply to instance-based variants", "remove endpoint.update:"),
    ]
    for broken, where, message, fix in rules:
        if broken:
            raise ConfigError(source, where, message, hint=fix)



def check_async_scaling(data: dict[str, Any], source: str) -> None:
    """Scaling to zero and the backlog metric belong to asynchronous endpoints ("Autoscale an asynchronous
    endpoint", SageMaker developer guide): a real-time variant keeps at least one instance, and only an
    asynchronous endpoint publishes ApproximateBacklogSizePerInstance."""
    scaling = data.get("autoscaling") or {}
    if not scaling or data["endpoint"].get("async") is not None:
        return
    if scaling.get("min") == 0:
        raise ConfigError(source, "autoscaling.min", "0 instances is for asynchronous endpoints only: a real-time "
                          "endpoint keeps at least one instance to answer its requests",
                          hint="set autoscaling.min to 1 or more, or make the endpoint asynchronous (endpoint.async:)")
    if scaling.get("metric") == "backlog":
        raise ConfigError(source, "autoscaling.metric", "backlog (ApproximateBacklogSizePerInstance) is published "
                          "for asynchronous endpoints only",
                          hint="use invocations or cpu, or make the endpoint asynchronous (endpoint.async:)")
