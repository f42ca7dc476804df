"""The watch file: one JSON line per slot, appended and flushed as each sample completes.

A killed watcher leaves every completed line on disk (each line is one write, flushed and fsynced);
at worst a torn last line, which ``--resume`` cuts off before it continues the same schedule from the
next slot, so a slot is never written twice. ``to_csv`` flattens the file: one column per series.

``check_writable`` runs before any call to AWS: an ``--out`` under a file, on a read-only disk or in a
directory sme may not write fails at once. A write that fails later (a full disk) ends the watch with the
file cut back to its last complete line and a message saying how many samples it holds.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sme.errors import SmeError, UserError


@dataclass
class Resumed:
    """What an existing file says about the schedule it was written on."""

    start: float
    interval: float
    endpoint: str
    next_slot: int
    event_ids: set[str] = field(default_factory=set)
    records: int = 0


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every complete line of the file, and the byte length they span (a torn tail is not counted)."""
    data = path.read_bytes()
    records, good = [], 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # torn last line: the writer died mid-write
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError:
            if good + len(raw) == len(data):
                break  # a damaged last line, same case
            raise UserError(f"{path}: line {len(records) + 1} is not JSON",
                            hint="this is not a file `sme watch` wrote, or it was edited; pick another --out") from None
        good += len(raw)
    return records, good


def resume_point(path: Path, records: list[dict[str, Any]]) -> Resumed | None:
    if not records:
        return None
    last = records[-1]
    try:
        interval = float(last["interval"])
        start = float(last["due"]) - int(last["slot"]) * interval
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: the last line has no slot/due/interval, so it cannot be resumed",
                        hint="pick another --out") from None
    ids = {e["id"] for r in records for e in r.get("events") or [] if e.get("id")}
    return Resumed(start, interval, str(last.get("endpoint") or ""), int(last["slot"]) + 1, ids, len(records))


class SampleWriter:
    """Appends records to the watch file, or prints them as JSON lines, or both."""

    def __init__(self, path: Path | None, stdout: TextIO | None = None):
        self.path = path
        self.stdout = stdout
        self._fd: Any = None
        self._lock: int | None = None
        self.written = 0  # lines this run appended

    def open(self, resume: bool) -> Resumed | None:
        """Open for appending; with ``resume``, cut a torn tail and return where the schedule stands."""
        if self.path is None:
            return None
        check_writable(self.path, "--out")
        self._lock = lock_watch_file(self.path)
        found: Resumed | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            if not resume:
                raise UserError(f"{self.path} already exists",
                                hint="pass --resume to continue it, or choose another --out")
            records, good = read_records(self.path)
            found = resume_point(self.path, records)
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
        return found

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n"
        if self.path is not None:
            self._append(self.path, line)
        if self.stdout is not None:
            self.stdout.write(line)
            self.stdout.flush()

    def _append(self, path: Path, line: str) -> None:
        """One line with one write (plain file descriptor: nothing buffered to fail again at close)."""
        good = None
        try:
            if self._fd is None:  # opened at the first sample, so bad input leaves no empty file behind
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            good = os.lseek(self._fd, 0, os.SEEK_END)
            data = line.encode()
            while data:
                data = data[os.write(self._fd, data):]
            os.fsync(self._fd)
        except OSError as exc:
            self._cut_back(good)
            from sme.schema import os_reason

            raise SmeError(f"cannot write to {path} ({os_reason(exc)}); the watch stopped. It holds every sample "
                           f"up to its last line ({self.written} from this run)",
                           hint="free space or fix the disk, then run the same command with --resume") from None
        self.written += 1

    def _cut_back(self, good: int | None) -> None:
        """Drop a partly written line (a full disk takes half a line), so the file stays resumable."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if good is not None:
                os.ftruncate(fd, good)
        except OSError:
            pass  # --resume cuts a torn last line too
        os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            os.close(self._lock)  # closing releases the flock
            self._lock = None


def lock_watch_file(path: Path) -> int:
    """One watcher per file: two `sme watch --resume` on one file would write every slot twice. The lock is
    ``.<name>.lock`` beside it (an flock: the kernel releases it when the watcher dies, so a killed watch
    never blocks the next)."""
    import fcntl

    lock = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{path} is being written by another sme watch",
                        hint="stop that watch first (its samples are kept), or write to another --out") from None
    return fd


def check_writable(path: Path, flag: str) -> None:
    """Can ``path`` be appended to, or created (with its missing parents)? Leaves nothing behind."""
    import tempfile

    from sme.schema import os_reason

    try:
        if path.exists():
            if not path.is_file():
                raise UserError(f"{flag} {path} is not a regular file", hint=f"give {flag} a file path")
            with open(path, "ab"):
                return
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{flag} {path}: {parent} is a file, not a directory", hint=f"choose another {flag}")
        fd, probe = tempfile.mkstemp(prefix=".sme-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {path} cannot be written ({os_reason(exc)})",
                        hint=f"choose another {flag} path, on a writable disk") from None


# -- CSV -------------------------------------------------------------------------------------------
BASE_COLUMNS = ("slot", "due", "time", "missed", "status", "errors", "events")


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One record -> {column: value}: a column per series (variant.metric, front_door.metric, subnet.free_ips, ...)."""
    row: dict[str, Any] = {k: record.get(k) for k in ("slot", "due", "time", "missed", "status")}
    row["errors"] = len(record.get("errors") or [])
    row["events"] = len(record.get("events") or [])
    for v in record.get("variants") or []:
        row[f"{v['name']}.current_instances"] = v.get("current_instances")
        row[f"{v['name']}.desired_instances"] = v.get("desired_instances")
    for variant, series in (record.get("metrics") or {}).items():
        for key, value in series.items():
            row[f"{variant}.{key}"] = value
    for key, value in ((record.get("front_door") or {}).get("metrics") or {}).items():
        row[f"front_door.{key}"] = value
    for key, value in ((record.get("async_queue") or {}).get("metrics") or {}).items():
        row[f"async_queue.{key}"] = value
    for s in record.get("subnets") or []:
        row[f"{s['id']}.free_ips"] = s.get("free_ips")
        row[f"{s['id']}.sagemaker_enis"] = s.get("sagemaker_enis")
    room = record.get("headroom") or {}
    if room:
        row["headroom.total"] = room.get("total")
        row["headroom.blue_green_spare"] = room.get("blue_green_spare")
        for az, free in (room.get("per_az") or {}).items():
            row[f"headroom.{az}"] = free
    return row


def to_csv(records: list[dict[str, Any]]) -> str:
    rows = [flatten(r) for r in records]
    columns = list(BASE_COLUMNS)
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return buf.getvalue()


def export_csv(jsonl: Path, out: Path) -> int:
    """Write the CSV of a watch file atomically; returns the number of rows."""
    from sme.state import write_atomic

    if not jsonl.exists():
        raise UserError(f"{jsonl}: no such file", hint="give the watch file with --out")
    records, _ = read_records(jsonl)
    try:
        write_atomic(out, to_csv(records), mode=0o644)
    except OSError as exc:
        from sme.schema import os_reason

        raise SmeError(f"cannot write {out} ({os_reason(exc)})",
                       hint="choose another --to-csv path, on a writable disk; the watch file is intact") from None
    return len(records)
