"""The deploy state file: what sme made for an experiment, recorded the moment each create succeeds.

``.sme/<experiment>.json`` (directory overridable with ``SME_STATE_DIR``), written atomically (temp file,
fsync, rename) with 0600 permissions because it may hold the front door's API key. It holds:

- ``resources``: one record per AWS resource sme created, in creation order (kind, name, arn, extra);
- ``endpoint_configs``: the history of endpoint configs the endpoint was pointed at, newest last, for
  `sme rollback`;
- ``secrets``: values never printed unless asked (e.g. the API key).

Teardown and rollback are sweeps over these records; a lost file can be rebuilt from the
``sme:experiment`` tags (see ``sme.core.discover``).

Commands that change an experiment hold its lock (``experiment_lock``: ``.sme/<experiment>.lock``, an
advisory ``flock`` that the kernel releases when the holder dies, so a killed run leaves no stale lock), and
a save merges with what is on disk: it never drops a record it did not itself forget.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sme.errors import SmeError, UserError

STATE_VERSION = 1


def state_dir() -> Path:
    return Path(os.environ.get("SME_STATE_DIR") or ".sme")


def state_path(experiment: str) -> Path:
    return state_dir() / f"{experiment}.json"


def ensure_state_dir() -> Path:
    """The state directory, 0700 whatever the umask (state files may hold an API key)."""
    path = state_dir()
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


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
    # what this process removed: a save keeps everything else it finds on disk
    removed: set[tuple[str, ...]] = field(default_factory=set, repr=False, compare=False)

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
        self.removed.add(("resource", kind, name))

    def drop_secret(self, key: str) -> None:
        self.secrets.pop(key, None)
        self.removed.add(("secret", key))

    def drop_output(self, key: str) -> None:
        self.outputs.pop(key, None)
        self.removed.add(("output", key))

    def merge(self, disk: "DeployState") -> None:
        """Take in what another writer saved that this one neither has nor removed."""
        for rec in disk.resources:
            if not self.find(rec.kind, rec.name) and ("resource", rec.kind, rec.name) not in self.removed:
                self.resources.append(rec)
        self.resources.sort(key=lambda r: r.created_at)
        seen = {(c["name"], c.get("at")) for c in self.endpoint_configs}
        self.endpoint_configs += [c for c in disk.endpoint_configs if (c["name"], c.get("at")) not in seen]
        self.endpoint_configs.sort(key=lambda c: c.get("at", 0))
        for kind, mine, theirs in (("secret", self.secrets, disk.secrets), ("output", self.outputs, disk.outputs)):
            for key, value in theirs.items():
                if key not in mine and (kind, key) not in self.removed:
                    mine[key] = value

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
    """Write the state atomically, merged with what is on disk (a record is dropped only by ``forget``)."""
    ensure_state_dir()
    path = state_path(state.experiment)
    if path.exists():
        with contextlib.suppress(UserError):
            state.merge(load_state(state.experiment))
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def remove_state(experiment: str) -> None:
    path = state_path(experiment)
    if path.exists():
        path.unlink()


class StateLocked(SmeError):
    """Another sme process is changing this experiment."""


@contextlib.contextmanager
def experiment_lock(experiment: str, command: str, *, wait: float = 0.0, say: Callable[[str], None] = print,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Hold ``.sme/<experiment>.lock`` while changing the experiment; wait up to ``wait`` seconds for another
    holder, then refuse, naming it. The lock file says who holds it (pid, command, host, since)."""
    path = ensure_state_dir() / f"{experiment}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, experiment, wait, say, clock, sleep)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "host": socket.gethostname(),
                                  "since": time.time()}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, experiment: str, wait: float, say: Callable[[str], None],
             clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    deadline, told = clock() + wait, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(path)
            if clock() >= deadline:
                raise StateLocked(f"experiment {experiment} is locked by {holder}",
                                  hint="wait for it to finish (or stop it), or pass --lock-timeout to wait; "
                                  f"the lock is released when that process ends ({path})") from None
            if not told:
                say(f"waiting for the lock on {experiment}, held by {holder}")
                told = True
            sleep(0.2)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another sme process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"`sme {info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since})"
