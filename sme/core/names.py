"""Immutable, content-addressed names: a model or endpoint config carries a short hash of its spec."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from typing import Any


def spec_hash(spec: Any, length: int = 8) -> str:
    data = asdict(spec) if is_dataclass(spec) else spec
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


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
