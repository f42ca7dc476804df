"""Helpers for command bodies (imported inside commands, never at `sme --help` time)."""

from __future__ import annotations

import re

from sme.core.names import EXPERIMENT_NAME, EXPERIMENT_NAME_HINT
from sme.errors import ConfigError, UserError


def experiment_name(name: str | None, config_path: str | None, region: str | None,
                    profile: str | None) -> tuple[str, str | None, str | None]:
    """The experiment's name (and region/profile) from --name or from an experiment file."""
    if config_path:
        from sme.schema import load_yaml

        data = load_yaml(config_path)
        name = name or data.get("name")
        region = region or data.get("region")
        profile = profile or data.get("profile")
        if not name:
            raise ConfigError(config_path, "name", "is required", hint="set `name:` or pass --name")
    if not name:
        raise UserError("no experiment name given", hint="pass --name NAME or -c sme.yaml")
    if not re.fullmatch(EXPERIMENT_NAME, str(name)):
        raise UserError(f"{name!r} is not a valid experiment name",
                        hint=EXPERIMENT_NAME_HINT)
    return str(name), region, profile
