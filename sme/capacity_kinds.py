"""`sme plan-capacity` for streaming (LLM) ladders and for serverless and asynchronous endpoints. Pure functions
of a ``Run`` and a ``capacity.Plan`` (``sme recommend`` may call them), so ``capacity.py`` keeps its arithmetic.

Streaming (a ladder over users, or rates, against a streamed target):

- each step's TTFT p50/p99, ITL p50/p99 and output tokens per second come from the summary's per-stage
  ``stream`` (full histograms), else from ``timeseries.csv``'s steady seconds (percentiles then the
  request-weighted mean of the per-second ones: approximate, and said so);
- a step holds when the plan's own checks held (p99, errors, served rate) and every stream limit held:
  ``ttft_p50_ms``, ``ttft_p99_ms``, ``itl_p50_ms``, ``itl_p99_ms`` (at most) and ``min_output_tokens_per_s``
  (at least), taken from the run's SLO and overridden by the command's flags;
- the knee is the held step (before the first break) with the most output tokens per second per instance;
- cost per million output tokens at the knee = its instances x the hourly price / (its tokens/s x 3600) x 10^6.

Serverless: no instances. Per inference: the measured inference seconds per request x the memory in GB x
the GB-second rate (plus data processed per request when the run counted bytes); at the peak that is
``peak x 3600`` inferences an hour, plus provisioned concurrency per hour. The concurrency the peak needs is
``peak x seconds per inference`` (Little's law), checked against MaxConcurrency.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sme.report.rundir import Run

STREAM_LIMITS = {"ttft_p50_ms": ("TTFT p50", "ttft_p50_ms"), "ttft_p99_ms": ("TTFT p99", "ttft_p99_ms"),
                 "itl_p50_ms": ("ITL p50", "itl_p50_ms"), "itl_p99_ms": ("ITL p99", "itl_p99_ms")}
MIN_TOKENS = "min_output_tokens_per_s"


@dataclass(frozen=True)
class StreamStep:
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    itl_p50_ms: float | None
    itl_p99_ms: float | None
    tokens_per_s: float | None


@dataclass
class StreamPlan:
    limits: dict[str, float]
    per_step: dict[int, StreamStep]  # by step number
    basis: str
    knee: int | None  # step number
    notes: list[str] = field(default_factory=list)


def is_streaming(run: Run) -> bool:
    return bool((run.summary or {}).get("stream")) or any(r.get("ttft_p99_ms") is not None for r in run.rows)


def stream_limits(run: Run, flags: dict[str, float | None]) -> dict[str, float]:
    """The run's own stream SLO limits, each overridden by a flag that was given."""
    limits: dict[str, float] = {}
    for check in ((run.summary or {}).get("slo") or {}).get("checks") or []:
        name, limit = check.get("name"), check.get("limit")
        if (name in STREAM_LIMITS or name == MIN_TOKENS) and isinstance(limit, (int, float)):
            limits[name] = float(limit)
    limits.update({k: float(v) for k, v in flags.items() if v is not None})
    return limits


def stream_steps(run: Run, steps: list[Any]) -> tuple[dict[int, StreamStep], str]:
    """Each step's stream numbers, and where they came from."""
    stages = {int(s.get("index", i)): s for i, s in enumerate((run.summary or {}).get("stages") or [])
              if isinstance(s, dict)}
    if steps and all(isinstance((stages.get(s.number - 1) or {}).get("stream"), dict) for s in steps):
        return {s.number: _from_stage(stages[s.number - 1]["stream"], s) for s in steps}, \
            "summary.json per-step stream (full histograms)"
    return {s.number: _from_rows(run, s) for s in steps}, \
        "timeseries.csv steady seconds (approximate: request-weighted mean of per-second percentiles)"


def _from_stage(stream: dict[str, Any], step: Any) -> StreamStep:
    ttft, itl = stream.get("ttft_ms") or {}, stream.get("itl_ms") or {}
    rate = stream.get("output_tokens_per_s")
    if not isinstance(rate, (int, float)) and isinstance(stream.get("output_tokens"), int) \
            and step.end_s > step.start_s:
        rate = stream["output_tokens"] / (step.end_s - step.start_s)
    return StreamStep(ttft.get("p50"), ttft.get("p99"), itl.get("p50"), itl.get("p99"),
                      float(rate) if isinstance(rate, (int, float)) else None)


def _from_rows(run: Run, step: Any) -> StreamStep:
    rows = [r for r in run.rows if r.get("stage") is not None and int(r["stage"]) == step.number - 1]  # type: ignore[arg-type]
    steady = rows[1:-1] if len(rows) >= 4 else rows
    tokens = [r["output_tokens"] for r in steady if r.get("output_tokens") is not None]

    def weighted(column: str) -> float | None:
        pairs = [(r[column], r["requests"] or 0) for r in steady if r.get(column) is not None]
        weight = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / weight if weight else None  # type: ignore[operator]

    return StreamStep(weighted("ttft_p50_ms"), weighted("ttft_p99_ms"), weighted("itl_p50_ms"),
                      weighted("itl_p99_ms"), sum(tokens) / len(steady) if tokens else None)  # type: ignore[arg-type]


def stream_why(s: StreamStep, limits: dict[str, float]) -> str:
    """Why a step broke a stream limit ("" when it held them all)."""
    for key, (label, attr) in STREAM_LIMITS.items():
        if key in limits:
            value = getattr(s, attr)
            if value is None:
                return f"no {label} recorded"
            if value > limits[key]:
                return f"{label} {value:.1f} ms > {limits[key]:g} ms"
    if MIN_TOKENS in limits and (s.tokens_per_s or 0.0) < limits[MIN_TOKENS]:
        return f"{s.tokens_per_s or 0.0:.1f} tokens/s < {limits[MIN_TOKENS]:g}"
    return ""


def apply_stream(p: Any, run: Run, flags: dict[str, float | None]) -> StreamPlan:
    """Judge a plan's steps on the stream limits too and move its knee to the held step (before the first
    break) with the most output tokens per second per instance. Changes ``p.steps``, ``p.knee``, ``p.notes``."""
    limits = stream_limits(run, flags)
    per_step, basis = stream_steps(run, [v.step for v in p.steps])
    judged = []
    for v in p.steps:
        why = stream_why(per_step[v.step.number], limits) if v.held else ""
        judged.append(replace(v, held=False, why=why) if why else v)
    knee = None
    for v in judged:
        if not v.held:
            break
        rate = (per_step[v.step.number].tokens_per_s or 0.0) / v.step.instances
        if knee is None or rate > (per_step[knee.step.number].tokens_per_s or 0.0) / knee.step.instances:
            knee = v
    p.steps, p.knee = judged, knee
    if not all(v.held for v in judged):  # (plan() said every step held before the stream limits were judged)
        p.notes = [n for n in p.notes if not n.startswith("every step held the SLO")]
    sp = StreamPlan(limits, per_step, basis, knee.step.number if knee else None)
    if not limits:
        sp.notes.append("no TTFT/ITL limit in the run's SLO or the flags (--ttft-p99-ms, --itl-p99-ms): the "
                        "streaming knee rests on the p99 and error checks only")
    return sp


def cost_per_million_tokens(usd_per_hour: float, tokens_per_s: float) -> float | None:
    """What a million output tokens cost at a steady ``tokens_per_s`` on capacity costing ``usd_per_hour``."""
    if tokens_per_s <= 0:
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1_000_000


@dataclass(frozen=True)
class ServerlessPlan:
    setup: Any  # kind_usage.ServerlessSetup
    seconds_per_inference: float | None
    compute_from: str
    data_included: bool
    usd_per_inference: float | None
    usd_per_hour_at_peak: float | None  # inferences at the peak for an hour, plus provisioned concurrency
    provisioned_usd_per_hour: float | None
    concurrency_at_peak: float | None
    source: str

    @property
    def usd_per_million(self) -> float | None:
        return None if self.usd_per_inference is None else self.usd_per_inference * 1_000_000


def serverless_plan(run: Run, peak_rps: float, rates: Any) -> ServerlessPlan | None:
    """A serverless endpoint's cost at the peak from what one inference of this run used (None when the run
    is not of a serverless endpoint). ``rates``: a ``kind_cost.ServerlessRates``."""
    from sme.report.kind_cost import ServerlessUsage, provisioned_per_hour, serverless_cost, total
    from sme.report.kind_usage import serverless_setup, serverless_usage

    setup = serverless_setup(run)
    if setup is None:
        return None
    m = serverless_usage(run, setup)
    each = m.seconds_per_inference
    per = None
    if each is not None:
        n = m.inferences
        one = ServerlessUsage(setup.memory_mb, each, round(m.usage.bytes_in / n), round(m.usage.bytes_out / n))
        lines = [x for x in serverless_cost(one, rates) if m.data_measured or not x.dimension.startswith("data")]
        per = total(lines)
    kept = provisioned_per_hour(setup.memory_mb, setup.provisioned_concurrency, rates) \
        if setup.provisioned_concurrency else 0.0
    hourly = None if per is None or kept is None else per * peak_rps * 3600.0 + kept
    return ServerlessPlan(setup, each, m.compute_from, m.data_measured, per, hourly, kept,
                          None if each is None else peak_rps * each, rates.source)


def serverless_lines(sp: ServerlessPlan, peak_rps: float) -> list[str]:
    s = sp.setup
    if sp.seconds_per_inference is None:
        return [f"serverless {s.memory_mb} MB: no inference time measured ({sp.compute_from}): cost unknown"]
    lines = [f"serverless {s.memory_mb} MB: {sp.seconds_per_inference * 1000:.1f} ms of inference each "
             f"(from {sp.compute_from})"]
    if sp.concurrency_at_peak is not None:
        fits = ("" if s.max_concurrency is None else
                f" of MaxConcurrency {s.max_concurrency}" + (": ABOVE it, expect throttles"
                                                             if sp.concurrency_at_peak > s.max_concurrency else ""))
        lines.append(f"concurrency at the peak of {peak_rps:g} req/s: {peak_rps:g} x "
                     f"{sp.seconds_per_inference:.4f} s = {sp.concurrency_at_peak:.1f}{fits}")
    data = "compute + data processed" if sp.data_included else "compute only (the run counted no bytes)"
    if sp.usd_per_inference is None:
        lines.append(f"cost: no serverless rate ({sp.source})")
        return lines
    lines += [f"cost per million inferences: ${sp.usd_per_million:,.4f} ({data})",
              "cost per hour at peak: " + ("unknown (no provisioned-concurrency rate)" if sp.usd_per_hour_at_peak
                                           is None else f"${sp.usd_per_hour_at_peak:,.4f}")
              + (f", of which provisioned concurrency {s.provisioned_concurrency} x {s.memory_mb} MB: "
                 + ("unknown" if sp.provisioned_usd_per_hour is None else f"${sp.provisioned_usd_per_hour:,.4f}")
                 if s.provisioned_concurrency else "; idle: $0 (no provisioned concurrency)"),
              f"prices: serverless in the region from {sp.source}"]
    return lines


def knee_cost_per_million_tokens(sp: StreamPlan, p: Any, usd_per_hour: float | None) -> tuple[float, float] | None:
    """(USD per hour of the knee's instances, USD per million output tokens there), when both are known."""
    if sp.knee is None or p.knee is None or usd_per_hour is None:
        return None
    hourly = p.knee.step.instances * usd_per_hour
    per = cost_per_million_tokens(hourly, sp.per_step[sp.knee].tokens_per_s or 0.0)
    return None if per is None else (hourly, per)


def stream_lines(sp: StreamPlan, p: Any, usd_per_hour: float | None) -> list[str]:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    limits = ", ".join(f"{k} {'>=' if k == MIN_TOKENS else '<='} {v:g}" for k, v in sp.limits.items()) or "none"
    lines = [f"streaming: limits {limits}; per step from {sp.basis}",
             f"{'step':>4}  {'load':>12}  {'tokens/s':>9}  {'TTFT p50':>8}  {'TTFT p99':>8}  {'ITL p99':>8}  verdict"]
    for v in p.steps:
        s = sp.per_step[v.step.number]
        tokens = "-" if s.tokens_per_s is None else f"{s.tokens_per_s:.1f}"
        lines.append(f"{v.step.number:>4}  {v.step.level:>12}  {tokens:>9}  {ms(s.ttft_p50_ms):>8}  "
                     f"{ms(s.ttft_p99_ms):>8}  {ms(s.itl_p99_ms):>8}  {'held' if v.held else 'BROKE: ' + v.why}")
    lines += [f"note: {n}" for n in sp.notes]
    if sp.knee is None:
        return lines + ["streaming knee: no step held every limit"]
    k = sp.per_step[sp.knee]
    lines.append(f"streaming knee: step {sp.knee}, {k.tokens_per_s or 0.0:.1f} output tokens/s at TTFT p99 "
                 f"{ms(k.ttft_p99_ms)} ms on {p.knee.step.instances:g} instance(s)")
    cost = knee_cost_per_million_tokens(sp, p, usd_per_hour)
    if cost is not None:
        lines.append(f"cost per million output tokens at the knee: ${cost[0]:,.4f}/hour / "
                     f"({k.tokens_per_s:.1f} tokens/s x 3600) x 1,000,000 = ${cost[1]:,.4f}")
    return lines


def stream_json(sp: StreamPlan, p: Any, usd_per_hour: float | None) -> dict[str, Any]:
    cost = knee_cost_per_million_tokens(sp, p, usd_per_hour)
    return {"limits": sp.limits, "basis": sp.basis, "knee_step": sp.knee, "notes": sp.notes,
            "steps": [{"step": n, "tokens_per_s": s.tokens_per_s, "ttft_p50_ms": s.ttft_p50_ms,
                       "ttft_p99_ms": s.ttft_p99_ms, "itl_p50_ms": s.itl_p50_ms, "itl_p99_ms": s.itl_p99_ms}
                      for n, s in sorted(sp.per_step.items())],
            "usd_per_million_output_tokens_at_knee": None if cost is None else cost[1]}


def serverless_json(sp: ServerlessPlan) -> dict[str, Any]:
    s = sp.setup
    return {"memory_mb": s.memory_mb, "max_concurrency": s.max_concurrency,
            "provisioned_concurrency": s.provisioned_concurrency, "seconds_per_inference": sp.seconds_per_inference,
            "compute_from": sp.compute_from, "data_included": sp.data_included,
            "usd_per_million_inferences": sp.usd_per_million, "usd_per_hour_at_peak": sp.usd_per_hour_at_peak,
            "provisioned_usd_per_hour": sp.provisioned_usd_per_hour, "concurrency_at_peak": sp.concurrency_at_peak,
            "source": sp.source}


def extend(run: Run, p: Any, opts: Any, price: Any, region: str,
           serverless_pricer: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What a streaming run or a serverless endpoint adds (capacity_kinds): JSON keys, and lines to print
    (``after_steps``; ``serverless`` in place of the instance arithmetic)."""
    from sme.report.kind_usage import endpoint_kind, serverless_setup
    from sme.report.serverless_prices import ServerlessPricer

    data: dict[str, Any] = {}
    lines: dict[str, list[str]] = {}
    if is_streaming(run):
        sp = apply_stream(p, run, {"ttft_p99_ms": opts.ttft_p99_ms, "itl_p99_ms": opts.itl_p99_ms})
        usd = price.usd_per_hour if price is not None else None
        data["stream"], lines["after_steps"] = stream_json(sp, p, usd), stream_lines(sp, p, usd)
    if endpoint_kind(run) == "async":  # AWS lets an asynchronous endpoint's scaling minimum be 0
        data["async"] = {"usd_per_hour_idle_at_zero": 0.0}
        lines["after_steps"] = lines.get("after_steps", []) + [
            "note: an asynchronous endpoint scaled in to zero instances costs nothing while idle (scaling "
            "minimum 0); the cost at minimum below is for --min-instances"]
    setup = serverless_setup(run)
    if setup is not None:
        rates = (serverless_pricer or ServerlessPricer(use_api=opts.use_pricing_api)).rates(region, setup.memory_mb)
        plan_ = serverless_plan(run, opts.peak_rps, rates)
        data["serverless"] = serverless_json(plan_)  # type: ignore[arg-type]
        lines["serverless"] = serverless_lines(plan_, opts.peak_rps)  # type: ignore[arg-type]
    return data, lines
