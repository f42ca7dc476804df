"""The status file a runtime process keeps for whoever started it: one small JSON document.

`{"state": "failed", "reason": "..."}` when the model cannot be served, and
`{"state": "ready", "pid": ..., "port": ..., ...}` once /ping answers. Written whole (write, then
rename), so a reader never sees half a document. Standard library only: the parent side imports it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

READY = "ready"
FAILED = "failed"


def write_status(path: Path | None, state: str, **fields) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"state": state, **fields}))
    os.replace(tmp, path)


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
