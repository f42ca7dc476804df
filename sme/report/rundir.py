"""Reading a run directory: what `sme loadtest --out DIR` and `sme watch --out FILE` left in it.

Either producer alone is enough. Damage is reported, not fatal, wherever something is still usable:
a torn or garbled JSON line is skipped and named in ``Run.notes``; a truncated ``summary.json`` leaves
the per-second rows. Only a directory with nothing sme wrote in it is an error, and the error lists what
the directory does hold.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sme.errors import UserError

SUMMARY = "summary.json"
TIMESERIES = "timeseries.csv"
WATCH = "watch.jsonl"  # the name `sme report` looks for first; any other *.jsonl watch file also works
NUMERIC = ("time", "elapsed_s", "stage", "users", "target_rps", "requests", "failures", "rps", "p50_ms",
           "p99_ms", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "output_tokens")  # (stream: optional)


@dataclass
class Run:
    directory: Path
    summary: dict[str, Any] | None = None
    rows: list[dict[str, float | None]] = field(default_factory=list)  # timeseries.csv, one per second
    samples: list[dict[str, Any]] = field(default_factory=list)  # watch lines that are not missed slots
    watch_path: Path | None = None
    missed_slots: int = 0
    notes: list[str] = field(default_factory=list)  # what is missing or damaged, in the user's words

    @property
    def has_loadtest(self) -> bool:
        return self.summary is not None or bool(self.rows)

    @property
    def has_watch(self) -> bool:
        return bool(self.samples)

    @property
    def started_at(self) -> float:
        """Zero of the shared time axis: the load test's start, else the first watch sample."""
        if self.summary and isinstance(self.summary.get("started_at"), (int, float)):
            return float(self.summary["started_at"])
        if self.rows and self.rows[0].get("time") is not None:
            first = self.rows[0]
            return float(first["time"]) - float(first.get("elapsed_s") or 0.0)  # type: ignore[arg-type]
        return float(self.samples[0]["time"])


def load_run(directory: str | Path, watch_file: str | Path | None = None) -> Run:
    path = Path(directory)
    if not path.exists():
        raise UserError(f"{path}: no such directory", hint="give the directory passed to `sme loadtest --out`")
    if not path.is_dir():
        raise UserError(f"{path} is a file, not a run directory",
                        hint="give the directory passed to `sme loadtest --out` (a watch file goes in --watch)")
    run = Run(path)
    _read_summary(run, path / SUMMARY)
    _read_timeseries(run, path / TIMESERIES)
    watch = Path(watch_file) if watch_file else _find_watch_file(path)
    if watch_file and not watch.is_file():  # type: ignore[union-attr]
        raise UserError(f"{watch}: no such file", hint="give the file passed to `sme watch --out`")
    if watch is not None:
        _read_watch(run, watch)
    if not run.has_loadtest and not run.has_watch:
        found = sorted(p.name for p in path.iterdir())[:12]
        what = ", ".join(found) if found else "nothing"
        detail = f" ({'; '.join(run.notes)})" if run.notes else ""
        raise UserError(f"{path} holds no load-test results and no watch samples{detail}; it has: {what}",
                        hint=f"run `sme loadtest --out {path}` and/or `sme watch --out {path / WATCH}` first")
    if run.summary is None and not run.rows:
        run.notes.append("no load-test results here: client req/s, client latency and SLO verdicts are missing")
    if not run.samples:
        run.notes.append("no watch file here: instances, CloudWatch metrics, subnets and cost are missing "
                         f"(run `sme watch --out {path / WATCH}` during the test)")
    return run


def _read_summary(run: Run, path: Path) -> None:
    if not path.exists():
        return
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        run.notes.append(f"{path.name} is not valid JSON (truncated?): ignored; stage shading and SLO verdicts "
                         "come only from it")
        return
    if not isinstance(data, dict) or "started_at" not in data or "requests" not in data:
        run.notes.append(f"{path.name} is not a summary `sme loadtest` wrote (no started_at/requests): ignored")
        return
    run.summary = data


def _read_timeseries(run: Run, path: Path) -> None:
    if not path.exists():
        return
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"time", "requests"} <= set(reader.fieldnames):
                run.notes.append(f"{path.name} has no time/requests columns: not a file `sme loadtest` wrote; ignored")
                return
            bad = 0
            for raw in reader:
                row = {k: _number(raw.get(k)) for k in NUMERIC}
                if row["time"] is None or row["requests"] is None:
                    bad += 1
                    continue
                run.rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        run.notes.append(f"{path.name} cannot be read ({exc}): ignored")
        run.rows.clear()
        return
    if bad:
        run.notes.append(f"{path.name}: {bad} damaged row(s) skipped")


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _find_watch_file(directory: Path) -> Path | None:
    preferred = directory / WATCH
    if preferred.is_file():
        return preferred
    for candidate in sorted(directory.glob("*.jsonl")):
        if _looks_like_watch(candidate):
            return candidate
    return None


def _looks_like_watch(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        record = json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and "slot" in record and "due" in record


def _read_watch(run: Run, path: Path) -> None:
    run.watch_path = path
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        run.notes.append(f"{path.name} cannot be read ({exc}): ignored")
        return
    damaged: list[int] = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if number == len(lines) and not raw.endswith(b"\n"):
                run.notes.append(f"{path.name}: the last line is cut off (the watcher was stopped mid-write): "
                                 "ignored")
            else:
                damaged.append(number)
            continue
        if not isinstance(record, dict) or "slot" not in record:
            damaged.append(number)
        elif record.get("missed"):
            run.missed_slots += 1
        elif isinstance(record.get("time"), (int, float)):
            run.samples.append(record)
    if damaged:
        shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
        run.notes.append(f"{path.name}: line(s) {shown} are not watch samples: skipped")
    if run.missed_slots:
        run.notes.append(f"{path.name}: {run.missed_slots} sample slot(s) were missed by the watcher (gaps)")
    run.samples.sort(key=lambda r: r["time"])
