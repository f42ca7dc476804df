"""Every name sme derives. A model or endpoint config carries a short hash of its spec (an immutable version);
everything else is named after the experiment, so a lost state file can be rebuilt from names and tags."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from typing import Any

# an experiment's name is also its endpoint's (SageMaker allows 63 characters; sme's suffixes need 18)
EXPERIMENT_NAME = r"^[a-zA-Z0-9](-?[a-zA-Z0-9]){0,44}$"
EXPERIMENT_NAME_HINT = "use 1-45 letters, digits and hyphens, starting with a letter or digit (e.g. churn-v2)"


def spec_hash(spec: Any, length: int = 8) -> str:
    """Fields that are None (a setting not used, such as a real-time variant's serverless) are left out, so
    adding an optional setting to sme does not rename, and so replace, what is already deployed."""
    data = _without_none(asdict(spec) if is_dataclass(spec) else spec)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value


def model_name(experiment: str, spec: Any) -> str:
    return f"{experiment}-model-{spec_hash(spec)}"


def config_name(experiment: str, spec: Any) -> str:
    return f"{experiment}-config-{spec_hash(spec)}"


def role_name(experiment: str) -> str:
    return f"sme-{experiment}-sagemaker"


def default_bucket(account: str, region: str) -> str:
    return f"sme-{account}-{region}"


def artifact_key(experiment: str, sha256: str) -> str:
    return f"{experiment}/model-{sha256[:16]}.tar.gz"


# -- autoscaling, alarms ---------------------------------------------------------------------------------
def scaling_resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def scaling_policy_name(endpoint: str, variant: str) -> str:
    return f"sme-{endpoint}-{variant}-tracking"


def wake_policy_name(endpoint: str, variant: str) -> str:
    """The step-scaling policy that wakes an asynchronous endpoint from zero (AWS's example names it
    HasBacklogWithoutCapacity-ScalingPolicy); its alarm has the same last part."""
    return f"sme-{endpoint}-{variant}-backlog-without-capacity"


def wake_alarm_name(endpoint: str, variant: str) -> str:
    return alarm_name(endpoint, variant, "backlog-without-capacity")


def alarm_prefix(endpoint: str) -> str:
    return f"sme-{endpoint}-"


def alarm_name(endpoint: str, variant: str, what: str) -> str:
    return f"{alarm_prefix(endpoint)}{variant}-{what}"


# -- the front door --------------------------------------------------------------------------------------
def gateway_api_name(experiment: str) -> str:
    """The REST API's, the API key's and the usage plan's name."""
    return f"sme-{experiment}"


def gateway_function_name(experiment: str) -> str:
    """The Lambda proxy's name; its role has the same name."""
    return f"sme-{experiment}-proxy"


def gateway_log_group(experiment: str) -> str:
    return f"/aws/lambda/{gateway_function_name(experiment)}"


SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


GATEWAY_ROLE_POLICY = "invoke-endpoint"  # the proxy role's inline policy


def gateway_permission_id(api_id: str) -> str:
    """The statement of the proxy function's resource policy that lets this REST API invoke it."""
    return f"sme-apigateway-{api_id}"


def lambda_integration_uri(region: str, function_arn: str) -> str:
    return f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"

# where `sme loadtest` uploads an asynchronous endpoint's inputs, under the experiment's name (teardown deletes them)
ASYNC_INPUTS = "sme-async-inputs"
