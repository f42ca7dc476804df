"""The deploy state file: what sme made for an experiment, recorded the moment each create succeeds.

``.sme/<experiment>.json`` (directory overridable with ``SME_STATE_DIR``), written atomically (temp file,
fsync, rename) with 0600 permissions because it may hold the front door's API key. It holds:

- ``resources``: one record per AWS resource sme created, in creation order (kind, name, arn, extra);
- ``endpoint_configs``: the history of endpoint configs the endpoint was pointed at, newest last, for
  `sme rollback`;
- ``secrets``: values never printed unless asked (e.g. the API key).

Teardown and rollback are sweeps over these records; a lost file can be rebuilt from the
``sme:experiment`` tags (see ``sme.core.discover``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sme.errors import UserError

STATE_VERSION = 1


def state_dir() -> Path:
    return Path(os.environ.get("SME_STATE_DIR") or ".sme")


def state_path(experiment: str) -> Path:
    return state_dir() / f"{experiment}.json"


@dataclass
class ResourceRecord:
    kind: str
    name: str
    arn: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "arn": self.arn, "extra": self.extra,
                "created_at": self.created_at}


@dataclass
class DeployState:
    experiment: str
    region: str = ""
    resources: list[ResourceRecord] = field(default_factory=list)
    endpoint_configs: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    # -- queries -------------------------------------------------------------------------------
    def find(self, kind: str, name: str | None = None) -> ResourceRecord | None:
        for rec in reversed(self.resources):
            if rec.kind == kind and (name is None or rec.name == name):
                return rec
        return None

    # -- changes (callers save) ----------------------------------------------------------------
    def record(self, kind: str, name: str, arn: str = "", **extra: Any) -> ResourceRecord:
        existing = self.find(kind, name)
        if existing:
            existing.arn = arn or existing.arn
            existing.extra.update(extra)
            return existing
        rec = ResourceRecord(kind, name, arn, dict(extra), time.time())
        self.resources.append(rec)
        return rec

    def forget(self, kind: str, name: str) -> None:
        self.resources = [r for r in self.resources if not (r.kind == kind and r.name == name)]

    def push_endpoint_config(self, config_name: str) -> None:
        if self.endpoint_configs and self.endpoint_configs[-1]["name"] == config_name:
            return
        self.endpoint_configs.append({"name": config_name, "at": time.time()})

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "experiment": self.experiment,
            "region": self.region,
            "resources": [r.to_json() for r in self.resources],
            "endpoint_configs": self.endpoint_configs,
            "secrets": self.secrets,
            "outputs": self.outputs,
        }


def load_state(experiment: str, *, must_exist: bool = False) -> DeployState:
    path = state_path(experiment)
    if not path.exists():
        if must_exist:
            raise UserError(
                f"no deploy state for experiment {experiment!r} ({path} does not exist)",
                hint=f"deploy it first with `sme deploy --name {experiment}`, or run from the directory "
                "that holds its .sme/ folder (or set SME_STATE_DIR)",
            )
        return DeployState(experiment)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: the deploy state file is unreadable ({exc})",
                        hint=f"move it aside; `sme teardown --name {experiment}` can rebuild it from tags") from None
    if data.get("version") != STATE_VERSION:
        raise UserError(f"{path}: state file version {data.get('version')!r} is not {STATE_VERSION}")
    return DeployState(
        experiment=data["experiment"],
        region=data.get("region", ""),
        resources=[ResourceRecord(**r) for r in data.get("resources", [])],
        endpoint_configs=list(data.get("endpoint_configs", [])),
        secrets=dict(data.get("secrets", {})),
        outputs=dict(data.get("outputs", {})),
    )


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file so that readers see the old content or the new, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_state(state: DeployState) -> Path:
    path = state_path(state.experiment)
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def remove_state(experiment: str) -> None:
    path = state_path(experiment)
    if path.exists():
        path.unlink()
