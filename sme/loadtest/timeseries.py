"""``timeseries.csv``, written while the run goes: one row per second, appended and flushed as it settles.

A SIGKILL, an OOM or a lost machine then leaves every second measured up to about one second before it
happened. At the normal end, rows of seconds that got more data after they were written (a worker's
report that came late) are written again, and the file is replaced atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sme.loadtest.stats import Window

CSV_HEADER = ["time", "elapsed_s", "stage", "users", "target_rps", "requests", "failures", "rps", "p50_ms",
              "p99_ms"]
STREAM_HEADER = ["ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "output_tokens"]  # streaming runs
State = list  # [stage index or None, users, target rate or None] noted for a second


def row(sec: int, started_at: float, w: Window, state: State, stream: bool = False) -> list[Any]:
    stage, users, rate = state
    return [sec, round(sec - started_at, 3), "" if stage is None else stage,
            "" if users is None or rate is not None else users, "" if rate is None else round(rate, 3),
            *_numbers(w, stream)]


def _numbers(w: Window, stream: bool = False) -> list[Any]:
    """requests, failures, rps, p50_ms, p99_ms of one second (and, streaming, STREAM_HEADER's numbers)."""
    p50, p99 = w.percentiles_ms(50.0, 99.0)
    out = [w.requests, w.failures, w.requests, _blank(p50), _blank(p99)]
    if stream:
        part = w.stream
        ttft = part.ttft.percentiles_ms(50.0, 99.0) if part else (None, None)
        itl = part.itl.percentiles_ms(50.0, 99.0) if part else (None, None)
        out += [*map(_blank, ttft), *map(_blank, itl), part.tokens if part else 0]
    return out


def _blank(v: float | None) -> Any:
    return "" if v is None else v


class TimeseriesFile:
    """Appends rows to ``path`` (created afresh); ``close`` corrects rows at the end."""

    def __init__(self, path: Path, stream: bool = False):
        self.path, self.stream = path, stream
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self.append([CSV_HEADER + (STREAM_HEADER if stream else [])])

    def append(self, rows: list[list[Any]]) -> None:
        if rows:
            self._csv.writerows(rows)
            self._fh.flush()  # to the kernel: a killed process loses nothing written here

    def close(self, corrected: dict[int, Window] | None = None, partly: frozenset[int] | set[int] = frozenset()) -> None:
        """Close. Rows of ``corrected`` seconds are written again, atomically: with the window's numbers, or,
        for the seconds in ``partly`` (only their late part is known), with its counts added."""
        self._fh.close()
        if corrected:
            _rewrite(self.path, corrected, partly, self.stream)


def _rewrite(path: Path, corrected: dict[int, Window], partly: frozenset[int] | set[int], stream: bool) -> None:
    from sme.state import write_atomic

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with open(path, newline="", encoding="utf-8") as fh:
        for i, fields in enumerate(csv.reader(fh)):
            sec = int(fields[0]) if i and fields and fields[0].lstrip("-").isdigit() else None
            if sec in corrected:
                w = corrected[sec]
                if sec in partly:
                    n, f = int(fields[5]) + w.requests, int(fields[6]) + w.failures
                    fields = [*fields[:5], n, f, n, *fields[8:]]
                    if stream and w.stream is not None:  # (its percentiles stay those of the part first known)
                        fields[-1] = int(fields[-1]) + w.stream.tokens
                else:
                    fields = [*fields[:5], *_numbers(w, stream)]
            writer.writerow(fields)
    write_atomic(path, buf.getvalue(), mode=0o644)
