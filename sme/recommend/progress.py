"""DIR/sweep.json: what the sweep has done, written atomically after every change, so that no candidate is
ever left behind and ``--resume DIR`` redoes only what did not finish.

A candidate is ``pending``, ``running``, ``done`` (measured and torn down) or ``failed`` (its error kept, and
torn down). ``deployed`` is set *before* its deploy starts and cleared only once its teardown succeeded: a
sweep killed at any moment leaves ``deployed: true`` on exactly the candidates that may have something in
AWS, and ``--resume`` tears those down first. ``pids`` are the sme commands running for a candidate (each in
its own session): a resumed sweep stops any still running from a killed one before touching the candidate.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sme.errors import UserError

FILE = "sweep.json"
VERSION = 1


@dataclass
class CandidateProgress:
    label: str
    experiment: str
    status: str = "pending"  # pending | running | done | failed
    deployed: bool = False
    error: str = ""
    pids: list[int] = field(default_factory=list)
    seconds: float | None = None  # the candidate's wall time, deploy to teardown


@dataclass
class Progress:
    path: Path
    id: str
    config: str
    candidates: list[CandidateProgress]
    started_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def get(self, label: str) -> CandidateProgress:
        return next(c for c in self.candidates if c.label == label)

    def update(self, label: str, **changes: Any) -> None:
        with self._lock:
            c = self.get(label)
            for key, value in changes.items():
                setattr(c, key, value)
            self._save()

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        from sme.state import write_atomic

        data = {"version": VERSION, "id": self.id, "config": self.config, "started_at": self.started_at,
                "candidates": [asdict(c) for c in self.candidates]}
        write_atomic(self.path, json.dumps(data, indent=2) + "\n", mode=0o644)


def new_id() -> str:
    return secrets.token_hex(3)


def read(out: Path) -> Progress:
    path = out / FILE
    try:
        data = json.loads(path.read_text())
        candidates = [CandidateProgress(**c) for c in data["candidates"]]
        return Progress(path, str(data["id"]), str(data["config"]), candidates, float(data["started_at"]))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file, so {out} is not a sweep's folder",
                        hint="give --resume the --out folder of an earlier `sme recommend`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a sweep record sme can read ({exc})",
                        hint="tear its candidates down by name with `sme teardown --name` and start a new sweep") \
            from None


def stop_orphans(c: CandidateProgress, folder: Path, say: Any, wait: float = 90.0) -> None:
    """Stop sme commands a killed sweep left running for this candidate (SIGTERM: a load test then ends
    its run and its load process as on Ctrl-C). Only processes whose command line names the candidate
    (its folder or its experiment), so a reused process id is never signalled."""
    marks = (str(folder), c.experiment)
    for pid in c.pids:
        if not _runs_for(pid, marks):
            continue
        say(f"{c.label}: stopping sme process {pid} left by the interrupted sweep")
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        deadline = time.monotonic() + wait
        while _runs_for(pid, marks) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _runs_for(pid, marks):
            os.killpg(pid, signal.SIGKILL)
    c.pids = []


def _runs_for(pid: int, marks: tuple[str, ...]) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and any(m.encode() in part for m in marks for part in cmdline)
