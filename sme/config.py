"""The experiment file (``sme.yaml``) and the flags that override it, as inert frozen dataclasses.

    name: churn
    region: eu-west-1
    profile: ml-prod                 # optional
    model:
      image: xgboost:1.7-1           # or a full ECR URI
      model_data: ./model.tar.gz     # or s3://bucket/key
      role: arn:aws:iam::123456789012:role/SageMakerRole   # or: create
      environment: {SAGEMAKER_PROGRAM: inference.py}
      bucket: my-artifacts           # optional; default sme-<account>-<region>
    network:
      subnets: [subnet-0a1b2c3d, subnet-1a2b3c4d, subnet-2a3b4c5d]
      security_groups: [sg-0123abcd]
      network_isolation: false
    endpoint:
      variants:
        - {name: AllTraffic, instance_type: ml.m5.large, count: 2, weight: 1}
    tags: {team: ml}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sme.core.names import EXPERIMENT_NAME, EXPERIMENT_NAME_HINT
from sme.endpoint_kinds import (ASYNC_SCHEMA, SERVERLESS_SCHEMA, AsyncInference, Serverless, async_of,
                                check_kinds, serverless_of)
from sme.errors import ConfigError
from sme.schema import field_path, load_yaml, validate

NAME_HINT = EXPERIMENT_NAME_HINT
SUBNET = {"type": "string", "pattern": r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$",
          "x-hint": "a subnet id looks like subnet-0a1b2c3d or subnet-0123456789abcdef0"}
SG = {"type": "string", "pattern": r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$",
      "x-hint": "a security group id looks like sg-0a1b2c3d or sg-0123456789abcdef0"}
ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"

# SageMaker's limits (botocore's service model: EnvironmentMap, EnvironmentKey, EnvironmentValue)
ENVIRONMENT = {"type": "object", "maxProperties": 100,
               "propertyNames": {"pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$", "maxLength": 1024,
                                 "x-hint": "an environment variable's name: letters, digits and underscores, "
                                           "not starting with a digit"},
               "additionalProperties": {"type": ["string", "number", "boolean"], "maxLength": 1024,
                                        "x-hint": "SageMaker takes values of at most 1024 characters"}}
# SageMaker's and IAM's tag limits (TagKey/TagValue; the character set is checked in check_tags), less the one
# tag sme adds (sme:experiment) from SageMaker's 50 per resource
TAGS = {"type": "object", "maxProperties": 49,
        "propertyNames": {"minLength": 1, "maxLength": 128, "not": {"pattern": "^([aA][wW][sS]|sme):"},
                          "x-hint": "a tag key of 1-128 characters, not starting with aws: or sme: (reserved)"},
        "additionalProperties": {"type": ["string", "number", "boolean"], "maxLength": 256,
                                 "x-hint": "AWS takes tag values of at most 256 characters"}}
TAG_PUNCTUATION = set("_.:/=+-@")
BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"

# CloudWatch's names and the front door's content type: text on one line (botocore's CloudWatch shapes)
ONE_LINE = {"type": "string", "minLength": 1, "pattern": r"^[^\x00-\x1f\x7f]+$",
            "x-hint": "text on one line, without control characters"}

DURATION = {"type": ["string", "integer"], "pattern": r"^\d+(\.\d+)?(ms|s|m|h)?(\d+(ms|s|m|h))*$",
            "x-hint": "a duration such as 300 (seconds), 90s, 5m or 1h"}
PERCENT = {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "x-hint": "a percentage of capacity, 1-100"}
AUTOSCALING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["max"],
    "description": "autoscaling needs at least `max:` (or pass --max)",
    "properties": {
        "min": {"type": "integer", "minimum": 0, "maximum": 1000,
                "x-hint": "the fewest instances: 1 or more, or 0 for an asynchronous endpoint (scale to zero)"},
        "max": {"type": "integer", "minimum": 1, "maximum": 1000, "x-hint": "the most instances, >= min",
                "description": "set autoscaling.max or pass --max"},
        "target": {"type": "number", "exclusiveMinimum": 0,
                   "x-hint": "the metric's target value per instance, e.g. 70 (invocations per minute per "
                             "instance), 60 (CPU %) or 5 (queued requests per instance, metric: backlog)"},
        "metric": {"anyOf": [
            {"enum": ["invocations", "cpu", "backlog"]},
            {"type": "object", "additionalProperties": False, "required": ["name", "namespace"],
             "properties": {"name": {**ONE_LINE, "maxLength": 255},
                            "namespace": {**ONE_LINE, "maxLength": 255, "not": {"pattern": "^:"},
                                          "x-hint": "a CloudWatch namespace such as AWS/SageMaker (not starting with :)"},
                            "statistic": {"enum": ["Average", "Minimum", "Maximum", "Sum", "SampleCount"]},
                            "dimensions": {"type": "object", "propertyNames": {**ONE_LINE, "maxLength": 255},
                                           "additionalProperties": {**ONE_LINE, "maxLength": 1024}},
                            "unit": {"type": "string", "pattern": r"^[A-Za-z]+(/Second)?$"}}}],
            "x-hint": "invocations (SageMakerVariantInvocationsPerInstance, the default for real-time), cpu "
                      "(CPUUtilization), backlog (ApproximateBacklogSizePerInstance, the default for an "
                      "asynchronous endpoint), or {name, namespace, statistic, dimensions} for a custom metric"},
        "scale_in_cooldown": DURATION,
        "scale_out_cooldown": DURATION,
        "disable_scale_in": {"type": "boolean"},
    },
}
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "strategy": {"enum": ["all-at-once", "canary", "linear"],
                     "x-hint": "all-at-once, canary (a slice first, then the rest) or linear (equal steps)"},
        "canary_size": PERCENT,
        "linear_step": PERCENT,
        "wait": {**DURATION, "x-hint": "how long to bake between traffic shifts, e.g. 5m"},
        "termination_wait": {**DURATION, "x-hint": "how long to keep the old fleet after the shift, e.g. 10m"},
        "timeout": {**DURATION, "x-hint": "the longest the whole update may take, e.g. 1h"},
        "alarms": {"anyOf": [{"const": "auto"},
                             {"type": "array", "minItems": 1, "maxItems": 10, "uniqueItems": True,
                              "items": {**ONE_LINE, "maxLength": 255}}],
                   "x-hint": "`auto` (sme creates 5XX-error and model-latency alarms) or a list of existing "
                             "CloudWatch alarm names"},
        "error_threshold": {"type": "integer", "minimum": 1,
                            "x-hint": "5XX errors per minute that trigger a rollback (alarms: auto)"},
        "latency_threshold": {**DURATION, "x-hint": "average model latency that triggers a rollback, e.g. 500ms"},
    },
}
GATEWAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stage": {"type": "string", "pattern": r"^[a-zA-Z0-9_]{1,64}$",
                  "x-hint": "a stage name of letters, digits and underscores, e.g. prod"},
        "path": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,64}$",
                 "x-hint": "one path segment for the POST resource, e.g. invoke"},
        "content_type": {**ONE_LINE, "minLength": 3,
                         "x-hint": "the content type sent to the model when a request has none, e.g. text/csv"},
        "throttle": {"type": "object", "additionalProperties": False,
                     "properties": {"rate": {"type": "number", "exclusiveMinimum": 0},
                                    "burst": {"type": "integer", "minimum": 1}},
                     "x-hint": "steady requests per second and burst, e.g. {rate: 50, burst: 100}"},
        "quota": {"type": "object", "additionalProperties": False, "required": ["limit"],
                  "properties": {"limit": {"type": "integer", "minimum": 1},
                                 "period": {"enum": ["DAY", "WEEK", "MONTH"]}},
                  "x-hint": "requests per period, e.g. {limit: 100000, period: DAY}"},
        "timeout": {**DURATION, "x-hint": "the proxy function's timeout, e.g. 30s (API Gateway allows 29s)"},
        "memory": {"type": "integer", "minimum": 128, "maximum": 10240},
    },
}

EXPERIMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "model", "endpoint"],
    "properties": {
        "name": {"type": "string", "pattern": EXPERIMENT_NAME, "x-hint": NAME_HINT,
                 "description": "the experiment's name: set `name:` or pass --name"},
        "region": {"type": "string", "pattern": r"^[a-z]{2}(-[a-z]+)+-\d$",
                   "x-hint": "an AWS region such as us-east-1 or eu-west-1"},
        "profile": {"type": "string", "minLength": 1},
        "model": {
            "type": "object",
            "additionalProperties": False,
            "required": ["image", "model_data", "role"],
            "properties": {
                "image": {"type": "string", "minLength": 3,
                          "x-hint": "a full ECR image URI, or framework:version such as xgboost:1.7-1",
                          "description": "set model.image or pass --image"},
                "model_data": {"type": "string", "minLength": 1,
                               "anyOf": [{"pattern": "^s3://" + BUCKET + "/[^\\x00-\\x1f]+$"},
                                         {"not": {"pattern": "^s3:"}}],
                               "x-hint": "an s3://bucket/key URI or the path of a local model.tar.gz",
                               "description": "set model.model_data or pass --model-data"},
                "role": {"type": "string",
                         "anyOf": [{"pattern": ROLE_ARN}, {"const": "create"}],
                         "x-hint": "an IAM role ARN such as arn:aws:iam::123456789012:role/SageMakerRole, "
                                   "or `create` to let sme make a least-privilege role",
                         "description": "set model.role or pass --role (an ARN, or `create`)"},
                "environment": ENVIRONMENT,
                "bucket": {"type": "string", "pattern": "^" + BUCKET + "$",
                           "x-hint": "an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"},
            },
        },
        "network": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "subnets": {"type": "array", "items": SUBNET, "minItems": 1, "uniqueItems": True},
                "security_groups": {"type": "array", "items": SG, "minItems": 1, "uniqueItems": True},
                "network_isolation": {"type": "boolean"},
            },
        },
        "endpoint": {
            "type": "object",
            "additionalProperties": False,
            "required": ["variants"],
            "description": "set endpoint.variants, or pass --instance-type (and --count)",
            "properties": {
                "variants": {
                    "type": "array", "minItems": 1, "maxItems": 10,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "pattern": r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"},
                            "instance_type": {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
                                              "x-hint": "a SageMaker instance type such as ml.m5.large",
                                              "description": "set instance_type or pass --instance-type"},
                            "count": {"type": "integer", "minimum": 1, "maximum": 100},
                            "weight": {"type": "number", "minimum": 0},
                            "serverless": SERVERLESS_SCHEMA,
                        },
                    },
                },
                "update": UPDATE_SCHEMA,
                "async": ASYNC_SCHEMA,
            },
        },
        "autoscaling": AUTOSCALING_SCHEMA,
        "gateway": GATEWAY_SCHEMA,
        "tags": TAGS,
    },
}


@dataclass(frozen=True)
class ModelConfig:
    image: str
    model_data: str
    role: str
    environment: tuple[tuple[str, str], ...] = ()
    bucket: str | None = None


@dataclass(frozen=True)
class NetworkConfig:
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    network_isolation: bool = False


@dataclass(frozen=True)
class VariantConfig:
    name: str
    instance_type: str | None  # None: a serverless variant
    count: int = 1
    weight: float = 1.0
    serverless: Serverless | None = None


@dataclass(frozen=True)
class Experiment:
    name: str
    model: ModelConfig
    variants: tuple[VariantConfig, ...]
    network: NetworkConfig = NetworkConfig()
    region: str | None = None
    profile: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    source: str = "command line"
    # the production sections as written (the schema checked their shape; sme.core.resolve fills defaults
    # and checks the rules across fields): None when the file has no such section
    autoscaling: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    update: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # endpoint.update
    gateway: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    async_inference: AsyncInference | None = None  # endpoint.async


@dataclass
class Overrides:
    """Flags given on the command line; None means 'not given'."""

    name: str | None = None
    region: str | None = None
    profile: str | None = None
    image: str | None = None
    model_data: str | None = None
    role: str | None = None
    instance_type: str | None = None
    count: int | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    autoscaling: dict[str, Any] = field(default_factory=dict)  # --min, --max, --target


def load_experiment(path: str | None, flags: Overrides) -> Experiment:
    """Read the file (if any), apply the flags over it, validate, and build the inert Experiment."""
    raw = load_yaml(path) if path else {}
    source = str(path) if path else "command line"
    merged = apply_overrides(raw, flags, source)
    validate(merged, EXPERIMENT_SCHEMA, source)
    check_tags(merged.get("tags") or {}, source)
    exp = build(merged, source)
    if not exp.model.model_data.startswith("s3://"):
        from sme.model_archive import check_model_archive

        check_model_archive(exp.model.model_data, source, dict(exp.model.environment))
    return exp


def check_tags(tags: dict[str, Any], source: str) -> None:
    """AWS tags (SageMaker, IAM, Lambda alike) take Unicode letters, digits and spaces, and _ . : / = + - @."""
    import unicodedata

    def bad(text: str) -> str | None:
        return next((c for c in text if c not in TAG_PUNCTUATION and unicodedata.category(c)[0] not in "LZN"), None)

    for key, value in tags.items():
        for what, text in (("key", key), ("value", str(value))):
            char = bad(text)
            if char is not None:
                raise ConfigError(source, field_path(["tags", key]), f"the tag {what} has {char!r}, which AWS refuses in tags",
                                  hint="use letters, digits, spaces and _ . : / = + - @")


def apply_overrides(raw: dict[str, Any], flags: Overrides, source: str) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    for key in ("name", "region", "profile"):
        if getattr(flags, key):
            data[key] = getattr(flags, key)
    model = data.setdefault("model", {}) if isinstance(data.get("model", {}), dict) else data["model"]
    for key in ("image", "model_data", "role"):
        if getattr(flags, key) and isinstance(model, dict):
            model[key] = getattr(flags, key)
    if flags.environment and isinstance(model, dict):
        env = model.setdefault("environment", {})
        for item in flags.environment:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise ConfigError("command line", "--env", f"{item!r} is not KEY=VALUE",
                                  hint="e.g. --env SAGEMAKER_PROGRAM=inference.py")
            env[k] = v
    if flags.subnets or flags.security_groups:
        net = data.setdefault("network", {})
        if flags.subnets:
            net["subnets"] = list(flags.subnets)
        if flags.security_groups:
            net["security_groups"] = list(flags.security_groups)
    if flags.instance_type or flags.count is not None:
        endpoint = data.setdefault("endpoint", {})
        variants = endpoint.setdefault("variants", [{}]) if isinstance(endpoint, dict) else None
        if isinstance(variants, list) and len(variants) > 1:
            raise ConfigError(source, "endpoint.variants",
                              "--instance-type/--count apply to a single variant, but the file has "
                              f"{len(variants)}", hint="set each variant's instance_type/count in the file")
        if isinstance(variants, list):
            if not variants:
                variants.append({})
            if flags.instance_type:
                variants[0]["instance_type"] = flags.instance_type
            if flags.count is not None:
                variants[0]["count"] = flags.count
    if flags.autoscaling:  # --min/--max/--target override fields of the section
        data["autoscaling"] = {**(data.get("autoscaling") or {}), **flags.autoscaling}
    if data.get("model") == {}:
        data.pop("model")
    return data


def build(data: dict[str, Any], source: str) -> Experiment:
    m = data["model"]
    net = data.get("network", {})
    variants = tuple(
        VariantConfig(
            name=v.get("name") or ("AllTraffic" if i == 0 else f"Variant{i + 1}"),
            instance_type=v.get("instance_type"),
            count=int(v.get("count", 1)),
            weight=float(v.get("weight", 1.0)),
            serverless=serverless_of(v.get("serverless")),
        )
        for i, v in enumerate(data["endpoint"]["variants"])
    )
    check_kinds(data, source)
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(source, "endpoint.variants", f"variant names must be unique, got {names}")
    if bool(net.get("subnets")) != bool(net.get("security_groups")):
        missing = "security_groups" if net.get("subnets") else "subnets"
        raise ConfigError(source, f"network.{missing}", "is required when the other of subnets/security_groups is set",
                          hint="SageMaker needs both: pass --subnet and --security-group (or set both in the file)")
    return Experiment(
        name=data["name"],
        region=data.get("region"),
        profile=data.get("profile"),
        model=ModelConfig(
            image=m["image"],
            model_data=m["model_data"],
            role=m["role"],
            environment=tuple(sorted((str(k), _env_value(v)) for k, v in (m.get("environment") or {}).items())),
            bucket=m.get("bucket"),
        ),
        network=NetworkConfig(
            subnets=tuple(net.get("subnets", ())),
            security_groups=tuple(net.get("security_groups", ())),
            network_isolation=bool(net.get("network_isolation", False)),
        ),
        variants=variants,
        tags=tuple(sorted((str(k), str(v)) for k, v in (data.get("tags") or {}).items())),
        source=source,
        autoscaling=data.get("autoscaling"),
        update=data["endpoint"].get("update"),
        gateway=data.get("gateway"),
        async_inference=async_of(data["endpoint"].get("async")),
    )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
