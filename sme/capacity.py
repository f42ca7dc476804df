"""`sme plan-capacity`: from a step run, how many instances a peak needs, the autoscaling target, the cost.

The arithmetic, in the order the output shows it:

- a step *held* the SLO when its p99 is within the limit, its errors (failures + dropped) within the
  error budget, and it served at least 90% of the rate it was asked for (open model);
- the knee is the step with the most successful req/s per instance among those that held before the
  first one that did not (on a climbing ladder: the last step that held); that rate is the sustainable
  req/s per instance, ``per_instance``;
- the autoscaling target value (metric InvocationsPerInstance, per minute) is
  ``per_instance x safety x 60`` (AWS's published formula);
- at the peak, that policy runs ``ceil(peak / (per_instance x safety))`` instances; the bare minimum that
  holds the SLO (no safety) is ``ceil(peak / per_instance)``;
- cost per hour = instances x hourly price; cost per million inferences = cost per hour at the peak /
  (peak x 3600) x 1,000,000.

Per-step numbers are those of the step's steady seconds (the first and last second of a step straddle its
neighbours): the ``steady`` counts and exact percentiles ``summary.json`` carries per stage. A run written
by an older sme has none: then the steady rows of ``timeseries.csv`` (their p99 only approximated, as the
request-weighted mean of per-second p99s: a note says so), else the whole-stage fields of ``summary.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sme.errors import UserError
from sme.report.rundir import Run

MIN_SERVED = 0.9  # an open-model step that served less than this share of its rate did not keep up


@dataclass(frozen=True)
class Step:
    number: int  # 1-based, as the report labels stages
    start_s: float
    end_s: float
    level: str  # "60 req/s" or "20 users"
    target_rps: float | None
    requests: int
    errors: int  # failures + dropped
    rps: float  # successful requests per second
    p99_ms: float | None
    instances: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Verdict:
    step: Step
    held: bool
    why: str = ""


@dataclass
class Plan:
    steps: list[Verdict]
    basis: str
    instances_from: str
    knee: Verdict | None
    peak_rps: float
    safety: float
    min_instances: int
    notes: list[str] = field(default_factory=list)

    @property
    def per_instance(self) -> float | None:
        if self.knee is None:
            return None
        return self.knee.step.rps / self.knee.step.instances

    @property
    def target_value(self) -> float | None:
        """InvocationsPerInstance per minute for a target-tracking policy."""
        return None if self.per_instance is None else self.per_instance * self.safety * 60

    @property
    def instances_at_peak(self) -> int | None:
        """What the target-tracking policy runs at the peak."""
        return None if self.per_instance is None else _ceil(self.peak_rps / (self.per_instance * self.safety))

    @property
    def instances_no_headroom(self) -> int | None:
        return None if self.per_instance is None else _ceil(self.peak_rps / self.per_instance)


def _ceil(x: float) -> int:
    return max(1, math.ceil(x - 1e-9))


def cost_per_hour(instances: int, usd_per_hour: float) -> float:
    return instances * usd_per_hour


def cost_per_million(usd_per_hour_at_peak: float, peak_rps: float) -> float:
    return usd_per_hour_at_peak / (peak_rps * 3600.0) * 1_000_000


def plan(run: Run, peak_rps: float, p99_ms: float, safety: float, instances: int | None,
         min_instances: int, max_error_rate: float | None) -> Plan:
    if not run.has_loadtest:
        raise UserError(f"{run.directory} has no load-test results (summary.json/timeseries.csv)",
                        hint=f"run a step ladder with `sme loadtest --out {run.directory}` first")
    notes: list[str] = []
    counts, instances_from = _instance_counts(run, instances)
    steps, basis = _steps(run, counts, notes)
    budget = max_error_rate if max_error_rate is not None else _slo_error_rate(run)
    verdicts = [_judge(s, p99_ms, budget) for s in steps]
    knee = None
    for i, v in enumerate(verdicts):
        if not v.held:
            later = [w.step.number for w in verdicts[i + 1:] if w.held]
            if later:
                notes.append(f"step(s) {', '.join(map(str, later))} held again after step {v.step.number} broke; "
                             "the plan stops at the first break")
            break
        if knee is None or v.step.rps / v.step.instances > knee.step.rps / knee.step.instances:
            knee = v  # the best per-instance rate held so far (a ladder climbs, but stages need not)
    if knee is not None and all(v.held for v in verdicts) and knee.step.number == max(
            (v.step for v in verdicts), key=lambda s: s.rps).number:
        notes.append("every step held the SLO: the knee is above the highest step, so this plan is conservative "
                     "(run a ladder that goes higher)")
    if not any(s.requests - s.errors > 0 for s in steps):
        notes.insert(0, "no step had a successful request")
    return Plan(verdicts, basis, instances_from, knee, peak_rps, safety, min_instances, notes)


def _slo_error_rate(run: Run) -> float:
    for check in ((run.summary or {}).get("slo") or {}).get("checks") or []:
        if check.get("name") == "error_rate" and isinstance(check.get("limit"), (int, float)):
            return float(check["limit"])
    return 0.01


def _judge(s: Step, p99_ms: float, budget: float) -> Verdict:
    if s.requests == 0 or s.requests == s.errors:
        return Verdict(s, False, "no successful request")
    if s.p99_ms is None:
        return Verdict(s, False, "no latency recorded")
    if s.p99_ms > p99_ms:
        return Verdict(s, False, f"p99 {s.p99_ms:.1f} ms > {p99_ms:g} ms")
    if s.error_rate > budget:
        return Verdict(s, False, f"errors {s.error_rate:.2%} > {budget:.2%}")
    if s.target_rps and s.rps < MIN_SERVED * s.target_rps:
        return Verdict(s, False, f"served {s.rps:.1f} of {s.target_rps:g} req/s asked")
    return Verdict(s, True)


# -- steps -------------------------------------------------------------------------------------------------
def _stage_entries(run: Run, notes: list[str]) -> list[dict[str, Any]]:
    stages = [s for s in (run.summary or {}).get("stages") or [] if isinstance(s, dict)]
    steps = [s for s in stages if s.get("kind") == "step"]
    if stages and not steps:
        notes.append("the run has no step ladder: each stage is taken as a step")
        steps = stages
    return steps


def _steps(run: Run, counts: Any, notes: list[str]) -> tuple[list[Step], str]:
    entries = _stage_entries(run, notes)
    if entries and all(isinstance(e.get("steady"), dict) for e in entries):
        steps = _steps_from_summary(entries, counts, steady=True)
        basis = "summary.json (steady seconds of each step)"
    elif run.rows:
        steps = _steps_from_rows(run, entries, counts)
        basis = "timeseries.csv (steady seconds of each step)"
        notes.append("summary.json has no per-step histograms of steady seconds (a run recorded by an older "
                     "sme, or the file is unreadable): each step's p99 is approximated as the request-weighted "
                     "mean of its seconds' p99s; run the ladder again for exact p99s")
    else:
        steps = _steps_from_summary(entries, counts, steady=False)
        basis = "summary.json per-step stats"
    if not steps:
        raise UserError(f"{run.directory}: the run has no steps to plan from",
                        hint="run a ladder: `stages: [{steps: {kind: rate, start: 50, step: 50, every: 2m}}]`")
    return steps, basis


def _level(entry: dict[str, Any]) -> tuple[str, float | None]:
    if entry.get("rate") is not None:
        return f"{entry['rate']:g} req/s", float(entry["rate"])
    if entry.get("users") is not None:
        return f"{entry['users']:g} users", None  # (a float when read from timeseries.csv)
    return "", None


def _steps_from_summary(entries: list[dict[str, Any]], counts: Any, steady: bool) -> list[Step]:
    """From each stage's ``steady`` numbers (over its steady seconds), or from the whole stage's."""
    out = []
    for e in entries:
        part = e["steady"] if steady else e
        if not isinstance(part.get("requests"), int) or e.get("start_s") is None:
            continue
        start, end = float(e["start_s"]), float(e["end_s"])
        span = float(part.get("seconds") or 0) if steady else end - start
        errors = int(part.get("failures") or 0) + int(part.get("dropped") or 0)
        ok = part["requests"] - int(part.get("failures") or 0)
        level, target = _level(e)
        p99 = (part.get("latency_ms") or {}).get("p99")
        out.append(Step(int(e.get("index", len(out))) + 1, start, end, level, target, part["requests"], errors,
                        ok / span if span > 0 else 0.0, p99, counts(start, end)))
    return out


def _steps_from_rows(run: Run, entries: list[dict[str, Any]], counts: Any) -> list[Step]:
    by_stage: dict[int, list[dict[str, Any]]] = {}
    for row in run.rows:
        if row.get("stage") is not None:
            by_stage.setdefault(int(row["stage"]), []).append(row)  # type: ignore[arg-type]
    wanted = {int(e.get("index", i)): e for i, e in enumerate(entries)} if entries else {
        i: {"index": i, "rate": rows[-1].get("target_rps"), "users": rows[-1].get("users")}
        for i, rows in by_stage.items()}
    out = []
    for index in sorted(wanted):
        rows = by_stage.get(index) or []
        steady = rows[1:-1] if len(rows) >= 4 else rows
        if not steady:
            continue
        e = wanted[index]
        start = float(e.get("start_s", rows[0].get("elapsed_s") or 0))
        end = float(e.get("end_s", start + len(rows)))
        n = int(sum(r["requests"] or 0 for r in steady))
        f = int(sum(r["failures"] or 0 for r in steady))
        pairs = [(r["p99_ms"], r["requests"] or 0) for r in steady if r.get("p99_ms") is not None]
        weight = sum(w for _, w in pairs)
        p99 = sum(p * w for p, w in pairs) / weight if weight else None
        level, target = _level(e)
        out.append(Step(index + 1, start, end, level, target, n, f, (n - f) / len(steady), p99,
                        counts(start, end)))
    return out


def _instance_counts(run: Run, flag: int | None) -> tuple[Any, str]:
    """A function (start_s, end_s) -> instances serving then; and where the count came from."""
    if flag is not None:
        return (lambda start, end: float(flag)), f"{flag} (--instances)"
    if not run.samples:
        return (lambda start, end: 1.0), "none known, 1 assumed (no watch file; pass --instances N)"
    t0 = run.started_at
    timed = [(float(r["time"]) - t0, sum(v.get("current_instances") or 0 for v in r.get("variants") or []))
             for r in run.samples]

    def during(start: float, end: float) -> float:
        inside = [c for t, c in timed if start <= t <= end and c]
        if inside:
            return sum(inside) / len(inside)
        before = [c for t, c in timed if t <= start and c]
        return float(before[-1]) if before else float(next((c for _, c in timed if c), 1))

    return during, "from the watch file"


# -- the command ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapacityOptions:
    directory: Any
    peak_rps: float
    p99_ms: float
    safety: float = 0.5
    instances: int | None = None
    min_instances: int = 1
    max_error_rate: float | None = None
    instance_type: str | None = None
    region: str | None = None
    use_pricing_api: bool = True
    watch_file: Any = None
    as_json: bool = False
    ttft_p99_ms: float | None = None  # stream limits (capacity_kinds); default: the run's own SLO
    itl_p99_ms: float | None = None


def run_plan_capacity(opts: CapacityOptions, env: Any, pricer: Any = None, serverless_pricer: Any = None) -> int:
    from sme.errors import ExitStatus
    from sme.report.build import instance_types, parse_instance_types, region_of, say
    from sme.report.pricing import Pricer
    from sme.report.rundir import load_run

    if not 0 < opts.safety <= 1:
        raise UserError(f"--safety {opts.safety:g} is out of range", hint="give a fraction in (0, 1], e.g. 0.5")
    run = load_run(opts.directory, opts.watch_file)
    p = plan(run, opts.peak_rps, opts.p99_ms, opts.safety, opts.instances, opts.min_instances,
             opts.max_error_rate)
    p.notes[:0] = [n for n in run.notes if not n.startswith("no watch file")]
    flag = parse_instance_types([opts.instance_type])[0] if opts.instance_type else None
    types = instance_types(run, ())
    itype = flag or next((t for t in types.values() if t), None)
    price = None
    region, _ = region_of(run, opts.region)
    if itype:
        from sme.report.kind_usage import endpoint_kind
        from sme.report.pricing import ASYNC_INF, HOST

        usage = ASYNC_INF if endpoint_kind(run) == "async" else HOST  # the Price List bills them apart
        price = (pricer or Pricer(use_api=opts.use_pricing_api)).price(itype, region, usage)
    from sme.capacity_kinds import extend

    data, kind_lines = extend(run, p, opts, price, region, serverless_pricer)
    data = {**to_json(p, price), **data}
    if opts.as_json:
        import json

        env.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        for line in render(p, price, opts.p99_ms, kind_lines):
            say(env, line) if line.startswith("note:") else env.out.print(line, markup=False, highlight=False,
                                                                           soft_wrap=True)
    return int(ExitStatus.OK if p.knee is not None else ExitStatus.SLO_FAILED)


def to_json(p: Plan, price: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "basis": p.basis, "instances_from": p.instances_from, "peak_rps": p.peak_rps, "safety": p.safety,
        "steps": [{"step": v.step.number, "level": v.step.level, "rps": round(v.step.rps, 3),
                   "p99_ms": v.step.p99_ms, "error_rate": round(v.step.error_rate, 6),
                   "instances": v.step.instances, "held": v.held, "why": v.why} for v in p.steps],
        "knee_step": p.knee.step.number if p.knee else None,
        "rps_per_instance": p.per_instance, "target_invocations_per_instance": p.target_value,
        "instances_at_peak": p.instances_at_peak, "instances_no_headroom": p.instances_no_headroom,
        "min_instances": p.min_instances, "notes": p.notes, "price": None}
    if price is not None:
        out["price"] = {"instance_type": price.instance_type, "region": price.region,
                        "usd_per_hour": price.usd_per_hour, "source": price.source, "note": price.note}
        if price.usd_per_hour is not None and p.instances_at_peak is not None:
            peak = cost_per_hour(p.instances_at_peak, price.usd_per_hour)
            out["cost"] = {"usd_per_hour_at_peak": peak,
                           "usd_per_hour_at_minimum": cost_per_hour(p.min_instances, price.usd_per_hour),
                           "usd_per_million_inferences_at_peak": cost_per_million(peak, p.peak_rps)}
    return out


def render(p: Plan, price: Any, p99_ms: float, kind_lines: dict[str, list[str]] | None = None) -> list[str]:
    lines = [f"steps: {p.basis}; instances: {p.instances_from}; SLO: p99 <= {p99_ms:g} ms",
             f"{'step':>4}  {'load':>12}  {'req/s':>9}  {'p99 ms':>8}  {'errors':>7}  {'inst':>4}  verdict"]
    for v in p.steps:
        s = v.step
        p99 = "-" if s.p99_ms is None else f"{s.p99_ms:.1f}"
        lines.append(f"{s.number:>4}  {s.level:>12}  {s.rps:>9.1f}  {p99:>8}  {s.error_rate:>7.2%}  "
                     f"{s.instances:>4g}  {'held' if v.held else 'BROKE: ' + v.why}")
    lines += [f"note: {n}" for n in p.notes]
    kind_lines = kind_lines or {}
    lines += kind_lines.get("after_steps", [])
    if p.knee is None:
        first = p.steps[0]
        lines.append(f"no step held the SLO, not even step {first.step.number} ({first.step.level}): "
                     "there is no sustainable rate to plan from")
        return lines
    k, per = p.knee.step, p.per_instance or 0.0
    lines += [
        f"highest step that held: step {k.number}, {k.rps:.1f} req/s on {k.instances:g} instance(s) "
        f"= {per:.2f} req/s per instance"]
    if "serverless" in kind_lines:  # no instances to scale: a serverless endpoint's cost is per inference
        return lines + kind_lines["serverless"]
    lines += [
        f"autoscaling target: InvocationsPerInstance = {per:.2f} x {p.safety:g} x 60 = {p.target_value:.1f} "
        "per instance per minute",
        f"instances for the peak of {p.peak_rps:g} req/s: {p.instances_at_peak} with that target "
        f"(bare minimum that holds the SLO: {p.instances_no_headroom})",
    ]
    if price is None:
        lines.append("cost: unknown instance type (pass --instance-type, e.g. ml.m5.large)")
    elif price.usd_per_hour is None:
        lines.append(f"cost: no price for {price.instance_type} in {price.region} ({price.note})")
    else:
        peak = cost_per_hour(p.instances_at_peak or 0, price.usd_per_hour)
        low = cost_per_hour(p.min_instances, price.usd_per_hour)
        lines += [
            f"cost per hour at peak: {p.instances_at_peak} x ${price.usd_per_hour:g} = ${peak:,.2f}; at minimum: "
            f"{p.min_instances} x ${price.usd_per_hour:g} = ${low:,.2f}",
            f"cost per million inferences at peak: ${cost_per_million(peak, p.peak_rps):,.4f}",
            f"prices: {price.instance_type} in {price.region} from {price.source}"
            + (f" ({price.note})" if price.note else ""),
        ]
    return lines
