"""The numbers at the top of a report: SLO verdicts, peak sustained req/s, p99, errors, instance-minutes,
cost and the lowest free-IP headroom. Pure functions of a ``Run`` and the prices of its instance types.

Instance-minutes are integrated from the watch samples: each sample's instance count holds until the
next sample (the last one for one sampling interval), so a scale-out is paid from the sample that saw it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from sme.report.pricing import Price
from sme.report.rundir import Run

SUSTAINED_WINDOW_S = 30  # "sustained" = the best mean over this many consecutive seconds


@dataclass
class VariantCost:
    variant: str
    instance_minutes: float
    price: Price | None  # None: the instance type is unknown

    @property
    def usd(self) -> float | None:
        if self.price is None or self.price.usd_per_hour is None:
            return None
        return self.instance_minutes / 60.0 * self.price.usd_per_hour


@dataclass
class Headline:
    target: str = ""
    started_at: float = 0.0
    duration_s: float | None = None
    partial: bool = False
    in_progress: bool = False  # the summary was written while the run went (it is running, or was killed)
    slo_passed: bool | None = None
    slo_checks: list[dict[str, Any]] = field(default_factory=list)
    requests: int | None = None
    failures: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    peak_rps: float | None = None
    peak_rps_basis: str = ""
    p99_ms: float | None = None
    p99_basis: str = ""
    costs: list[VariantCost] = field(default_factory=list)
    watched_s: float | None = None
    lowest_headroom: int | None = None
    lowest_headroom_at_s: float | None = None
    lowest_az: tuple[str, int] | None = None

    @property
    def error_rate(self) -> float | None:
        if not self.requests:
            return None
        return (self.failures or 0) / self.requests

    @property
    def instance_minutes(self) -> float | None:
        return sum(c.instance_minutes for c in self.costs) if self.costs else None

    @property
    def priced_usd(self) -> float:
        """The cost of the variants whose price is known (a lower bound when some are not)."""
        return sum(c.usd for c in self.costs if c.usd is not None)

    @property
    def cost_usd(self) -> float | None:
        if not self.costs or any(c.usd is None for c in self.costs):
            return None
        return sum(c.usd for c in self.costs)  # type: ignore[misc]


def headline(run: Run, prices: dict[str, Price | None]) -> Headline:
    s = run.summary or {}
    h = Headline(target=str((s.get("target") or {}).get("name") or _endpoint(run)), started_at=run.started_at,
                 duration_s=s.get("duration_s"), partial=bool(s.get("partial")),
                 in_progress=bool(s.get("in_progress")))
    if s.get("slo"):
        h.slo_passed = bool(s["slo"].get("passed")) if s["slo"].get("checks") else None
        h.slo_checks = list(s["slo"].get("checks") or [])
    _requests(run, h)
    _peak(run, h)
    _p99(run, h)
    if run.samples:
        minutes, h.watched_s = instance_minutes(run.samples)
        h.costs = [VariantCost(v, m, prices.get(v)) for v, m in minutes.items()]
        _headroom(run, h)
    return h


def _endpoint(run: Run) -> str:
    return str(run.samples[0].get("endpoint") or "") if run.samples else ""


def _requests(run: Run, h: Headline) -> None:
    s = run.summary or {}
    if isinstance(s.get("requests"), int):
        h.requests, h.failures = s["requests"], int(s.get("failures") or 0)
        h.errors = [e for e in s.get("errors") or [] if isinstance(e, dict)]
    elif run.rows:
        h.requests = int(sum(r["requests"] or 0 for r in run.rows))
        h.failures = int(sum(r["failures"] or 0 for r in run.rows))


def _peak(run: Run, h: Headline) -> None:
    if run.rows:
        ok = [(r["requests"] or 0) - (r["failures"] or 0) for r in run.rows]
        w = max(1, min(SUSTAINED_WINDOW_S, len(ok)))
        best = running = sum(ok[:w])
        for i in range(w, len(ok)):  # a sliding sum: a 24-hour run has 86,400 rows
            running += ok[i] - ok[i - w]
            best = max(best, running)
        best /= w
        h.peak_rps, h.peak_rps_basis = best, f"successful requests, best {w} s window (client)"
        return
    if run.summary and isinstance(run.summary.get("rps"), (int, float)):
        h.peak_rps, h.peak_rps_basis = float(run.summary["rps"]), "whole-run mean (client)"
        return
    best = None
    for rec in run.samples:
        window = rec.get("window")
        if not (isinstance(window, list) and len(window) == 2 and window[1] > window[0]):
            continue
        counts = [m.get("Invocations") for m in (rec.get("metrics") or {}).values()]
        counts = [c for c in counts if isinstance(c, (int, float))]
        if counts:
            rate = sum(counts) / (window[1] - window[0])
            best = rate if best is None else max(best, rate)
    if best is not None:
        h.peak_rps, h.peak_rps_basis = best, "CloudWatch Invocations, best sample window"


def _p99(run: Run, h: Headline) -> None:
    lat = (run.summary or {}).get("latency_ms") or {}
    if isinstance(lat.get("p99"), (int, float)) and (h.requests or 0) > 0:
        h.p99_ms, h.p99_basis = float(lat["p99"]), "all requests (client)"
        return
    if any(r.get("p99_ms") is not None for r in run.rows):
        # a p99 comes from the run's histogram only (summary.json): an average of per-second p99s is not one
        h.p99_basis = "unknown: summary.json (the run's histogram) is missing or unreadable; per-second p99s " \
                      "are in the latency chart"


def instance_minutes(samples: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
    """Per variant, the instance-minutes the samples saw; and the seconds the samples cover."""
    times = [float(r["time"]) for r in samples]
    spacing = [b - a for a, b in zip(times, times[1:]) if b > a]
    last = samples[-1].get("interval")
    tail = float(last) if isinstance(last, (int, float)) and last > 0 else (
        statistics.median(spacing) if spacing else 60.0)
    out: dict[str, float] = {}
    covered = 0.0
    for i, rec in enumerate(samples):
        held = (times[i + 1] - times[i]) if i + 1 < len(samples) else tail
        covered += held
        for v in rec.get("variants") or []:
            count = v.get("current_instances")
            if isinstance(count, (int, float)):
                out[v["name"]] = out.get(v["name"], 0.0) + count * held / 60.0
    return out, covered


def _headroom(run: Run, h: Headline) -> None:
    for rec in run.samples:
        room = rec.get("headroom") or {}
        total = room.get("total")
        if isinstance(total, (int, float)) and (h.lowest_headroom is None or total < h.lowest_headroom):
            h.lowest_headroom, h.lowest_headroom_at_s = int(total), float(rec["time"]) - run.started_at
        for az, free in (room.get("per_az") or {}).items():
            if isinstance(free, (int, float)) and (h.lowest_az is None or free < h.lowest_az[1]):
                h.lowest_az = (az, int(free))
