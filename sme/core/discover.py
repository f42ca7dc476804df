"""Rebuild a lost deploy state from the sme:experiment tags (SageMaker's own list and ListTags calls).

Moto's tagging API mangles endpoint-config ARNs (FACTS.md), so discovery lists by name and checks tags
with SageMaker's and IAM's own calls.
"""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call
from sme.core.models import EXPERIMENT_TAG
from sme.core.names import role_name
from sme.state import DeployState


def discover(aws: Any, experiment: str, state: DeployState) -> list[str]:
    """Add tagged resources missing from ``state``; return 'kind name' for each one found."""
    found: list[str] = []
    sm = aws.client("sagemaker")
    listings = [
        ("endpoint", "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
        ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
        ("model", "list_models", "Models", "ModelName", "ModelArn"),
    ]
    for kind, op, key, name_key, arn_key in listings:
        with aws_call(f"sagemaker:{op}", experiment):
            pages = sm.get_paginator(op).paginate(NameContains=experiment)
            items = [item for page in pages for item in page.get(key, [])]
        for item in items:
            if state.find(kind, item[name_key]):
                continue
            with aws_call("sagemaker:ListTags", item[name_key]):
                tags = sm.list_tags(ResourceArn=item[arn_key]).get("Tags", [])
            if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
                state.record(kind, item[name_key], item[arn_key])
                found.append(f"{kind} {item[name_key]}")
    found += _discover_role(aws, experiment, state)
    from sme.core.discover_extras import discover_extras

    found += discover_extras(aws, experiment, state)
    return found


def _discover_role(aws: Any, experiment: str, state: DeployState) -> list[str]:
    iam = aws.client("iam")
    name = role_name(experiment)
    if state.find("role", name):
        return []
    try:
        with aws_call("iam:ListRoleTags", name):
            tags = iam.list_role_tags(RoleName=name).get("Tags", [])
    except Exception:  # noqa: BLE001 - no such role
        return []
    if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
        state.record("role", name)
        return [f"role {name}"]
    return []
