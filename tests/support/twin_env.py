"""The environment a subprocess `sme` needs to talk to an in-process LocalAws, and nothing of the real AWS setup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def twin_environment(local: Any, state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local.environment())
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.environ["AWS_CONFIG_FILE"]
    env["SME_STATE_DIR"] = str(state_dir)
    return env | extra
