"""Every series of a run on one time axis: seconds since the load test started (or the first sample).

Pure: a ``Run`` in, ``Chart`` specs out. A chart with no data is left out and named in ``omitted`` with
what it needs, so a report from a watch file alone, or a load test alone, shows only what it can.
Units are converted here: CloudWatch latencies arrive in microseconds and are drawn in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from sme.report.rundir import Run

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[Point, ...]
    step: bool = False  # a count that holds until the next sample (instances)
    dashed: bool = False


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    unit: str
    series: tuple[Series, ...]
    caption: str = ""
    y_at_least: float = 0.0  # the y axis reaches at least this (100 for percentages)
    integer: bool = False  # ticks on whole numbers only (instances, addresses)


@dataclass(frozen=True)
class Band:
    """A load stage, shaded behind every chart."""

    start_s: float
    end_s: float
    label: str
    detail: str
    usage: str = ""  # CPU and memory during the stage, from the watch samples inside it (utilisation.cell)


@dataclass(frozen=True)
class Marker:
    """An event (a scaling activity, a status change) drawn as a numbered line on the instance chart."""

    at_s: float
    number: int
    kind: str
    text: str


@dataclass
class Timeline:
    started_at: float
    end_s: float
    begin_s: float = 0.0
    bands: list[Band] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)


def build(run: Run) -> Timeline:
    t0 = run.started_at
    bands = [_with_usage(b, run, t0) for b in stage_bands(run.summary)]
    markers = event_markers(run.samples, t0)
    charts: list[Chart] = []
    omitted: list[str] = []
    for make in (_throughput, _latency, _tokens_latency, _tokens_rate, _instances, _utilisation, _subnets):
        chart, need = make(run, t0)
        if chart is not None and any(s.points for s in chart.series):
            charts.append(Chart(chart.key, chart.title, chart.unit, tuple(s for s in chart.series if s.points),
                                chart.caption, chart.y_at_least, chart.integer))
        elif need:  # (a chart that does not apply to this run, e.g. tokens of a run that did not stream, says "")
            omitted.append(need)
    xs = [x for c in charts for s in c.series for x, _ in s.points] + [b.end_s for b in bands]
    xs += [m.at_s for m in markers]
    end = max(xs) if xs else 0.0
    begin = min([0.0] + [x for c in charts for s in c.series for x, _ in s.points] + [m.at_s for m in markers])
    return Timeline(t0, max(end, begin + 1.0), begin, bands, markers, charts, omitted)


def _with_usage(band: Band, run: Run, t0: float) -> Band:
    from dataclasses import replace

    from sme.report.utilisation import between, cell

    return replace(band, usage=cell(between(run.samples, None, t0 + band.start_s, t0 + band.end_s)))


def stage_bands(summary: dict[str, Any] | None) -> list[Band]:
    out = []
    for st in (summary or {}).get("stages") or []:
        try:
            start, end = float(st["start_s"]), float(st["end_s"])
        except (KeyError, TypeError, ValueError):
            continue
        level = (f"{st['rate']:g} req/s" if st.get("rate") is not None
                 else f"{st['users']} users" if st.get("users") is not None else "")
        kind = st.get("kind") or ""
        detail = f"step to {level}" if kind == "step" else level or kind  # "users"/"rate" say it already
        out.append(Band(start, end, str(int(st.get("index", len(out))) + 1), detail))
    return out


def event_markers(samples: list[dict[str, Any]], t0: float) -> list[Marker]:
    seen: set[tuple[Any, ...]] = set()
    out: list[Marker] = []
    for rec in samples:
        for ev in rec.get("events") or []:
            key = (ev.get("id"), ev.get("time"), ev.get("message"))
            if key in seen or not isinstance(ev.get("time"), (int, float)):
                continue
            seen.add(key)
            who = f"{ev['variant']}: " if ev.get("variant") else ""
            out.append(Marker(float(ev["time"]) - t0, 0, str(ev.get("kind") or "event"),
                              f"{who}{ev.get('message') or ''}".strip()))
    out.sort(key=lambda m: m.at_s)
    return [Marker(m.at_s, i + 1, m.kind, m.text) for i, m in enumerate(out)]


# -- the charts --------------------------------------------------------------------------------------
def _client(run: Run, t0: float, column: str) -> tuple[Point, ...]:
    pts = []
    for row in run.rows:
        value = row.get(column)
        if value is None:
            continue
        x = row["elapsed_s"] if row.get("elapsed_s") is not None else row["time"] - t0  # type: ignore[operator]
        pts.append((float(x), float(value)))  # type: ignore[arg-type]
    return tuple(pts)


def _variants(run: Run) -> list[str]:
    names: list[str] = []
    for rec in run.samples:
        for v in rec.get("variants") or []:
            if v.get("name") and v["name"] not in names:
                names.append(v["name"])
        for name in rec.get("metrics") or {}:
            if name not in names:
                names.append(name)
    return names


def _metric(run: Run, t0: float, variant: str | None, key: str, scale: float = 1.0) -> tuple[Point, ...]:
    """A CloudWatch series of a variant (or of the front door, ``variant=None``), at each window's middle."""
    pts = []
    for rec in run.samples:
        group = ((rec.get("front_door") or {}).get("metrics") if variant is None
                 else (rec.get("metrics") or {}).get(variant))
        value = (group or {}).get(key)
        if not isinstance(value, (int, float)):
            continue
        window = rec.get("window")
        at = (window[0] + window[1]) / 2 if isinstance(window, list) and len(window) == 2 else rec["time"]
        pts.append((float(at) - t0, float(value) * scale))
    return tuple(pts)


def _named(label: str, variant: str, many: bool) -> str:
    return f"{label} ({variant})" if many else label


def _throughput(run: Run, t0: float) -> tuple[Chart | None, str]:
    need = "Requests and errors: needs timeseries.csv from `sme loadtest --out`"
    if not run.rows:
        return None, need
    return Chart("throughput", "Client requests and errors", "req/s",
                 (Series("requests/s", _client(run, t0, "rps")), Series("errors/s", _client(run, t0, "failures"))),
                 "Per second, as the load generator saw them."), need


def _streamed(run: Run) -> bool:
    return bool((run.summary or {}).get("stream"))


def _tokens_latency(run: Run, t0: float) -> tuple[Chart | None, str]:
    need = "Time to first token and inter-token latency: needs timeseries.csv of a streaming run" if _streamed(run) \
        else ""
    if not any(r.get("ttft_p99_ms") is not None for r in run.rows):
        return None, need
    return Chart("tokens_latency", "Time to first token and inter-token latency", "ms",
                 (Series("TTFT p50", _client(run, t0, "ttft_p50_ms")),
                  Series("TTFT p99", _client(run, t0, "ttft_p99_ms")),
                  Series("ITL p99", _client(run, t0, "itl_p99_ms"), dashed=True)),
                 "Per second, by completion time, as the load generator saw them: TTFT from each request's start "
                 "(its due time in the open model) to its first token; ITL between consecutive tokens."), need


def _tokens_rate(run: Run, t0: float) -> tuple[Chart | None, str]:
    need = "Output tokens per second: needs timeseries.csv of a streaming run" if _streamed(run) else ""
    if not any(r.get("output_tokens") is not None for r in run.rows):
        return None, need
    return Chart("tokens_rate", "Output tokens per second", "tokens/s",
                 (Series("output tokens/s", _client(run, t0, "output_tokens")),),
                 "Tokens of the answers that completed in each second (the server's own count when it gives one)."), \
        need


# the front door's layers, outermost first: API Gateway's whole time, the part spent waiting on its
# integration, the Lambda proxy's run (all CloudWatch milliseconds)
FRONT_DOOR_LAYERS = (("Latency", "API Gateway Latency avg", False), ("Latency:p99", "API Gateway Latency p99", False),
                     ("IntegrationLatency", "IntegrationLatency avg", True),
                     ("IntegrationLatency:p99", "IntegrationLatency p99", True),
                     ("Duration", "Lambda Duration avg", True))


def _latency(run: Run, t0: float) -> tuple[Chart | None, str]:
    series = [Series("client p50", _client(run, t0, "p50_ms")), Series("client p99", _client(run, t0, "p99_ms"))]
    series += [Series(label, _metric(run, t0, None, key), dashed=dashed) for key, label, dashed in FRONT_DOOR_LAYERS]
    door = any(s.points for s in series[2:])
    variants = _variants(run)
    many = len(variants) > 1
    for v in variants:
        for key, label, dashed in (("ModelLatency", "ModelLatency avg", False),
                                   ("ModelLatency:p99", "ModelLatency p99", False),
                                   ("OverheadLatency", "OverheadLatency avg", True),
                                   ("OverheadLatency:p99", "OverheadLatency p99", True)):
            series.append(Series(_named(label, v, many), _metric(run, t0, v, key, 0.001), dashed=dashed))
    caption = ("Client percentiles per second; CloudWatch averages per sample window. The gap between the "
               "client's latency and ModelLatency + OverheadLatency is the network and gateway cost."
               if run.rows and variants else
               "CloudWatch, per sample window: ModelLatency is the container's time, OverheadLatency SageMaker's."
               if variants else "Client percentiles per second.")
    if door:
        caption = ("Each layer contains the next: the client's time holds API Gateway's Latency, which holds its "
                   "IntegrationLatency (waiting on the Lambda proxy), which holds the proxy's Duration, which holds "
                   "SageMaker's OverheadLatency + ModelLatency. Client percentiles per second; CloudWatch averages "
                   "per sample window." + layer_means(run))
    title = ("Latency by layer: client, API Gateway, Lambda, SageMaker" if door else
             "Latency: client vs CloudWatch" if run.rows and variants else "Latency")
    return Chart("latency", title, "ms", tuple(series), caption), \
        "Latency: needs timeseries.csv or a watch file with ModelLatency"


def layer_means(run: Run) -> str:
    """Where the time went on average over the watch, layer by layer (each mean weighted by its sample's
    request count, so a busy minute counts more than an idle one)."""
    door = [((r.get("front_door") or {}).get("metrics") or {}) for r in run.samples]
    sm = [_sum_variants(r) for r in run.samples]
    layers = [("API Gateway", _mean(door, "Latency", "Count")),
              ("integration", _mean(door, "IntegrationLatency", "Count")),
              ("Lambda", _mean(door, "Duration", "Count")),
              ("SageMaker overhead", _mean(sm, "OverheadLatency", "Invocations", 0.001)),
              ("model", _mean(sm, "ModelLatency", "Invocations", 0.001))]
    known = [(name, ms) for name, ms in layers if ms is not None]
    if not known:
        return ""
    return " Averages over the watch: " + ", ".join(f"{name} {ms:,.2f} ms" for name, ms in known) + "."


def _sum_variants(rec: dict[str, Any]) -> dict[str, float]:
    """One sample's SageMaker latencies across variants (Invocations-weighted) and its Invocations."""
    groups = [g for g in (rec.get("metrics") or {}).values() if isinstance(g, dict)]
    out: dict[str, float] = {}
    total = sum(g["Invocations"] for g in groups if isinstance(g.get("Invocations"), (int, float)))
    if total:
        out["Invocations"] = total
        for key in ("OverheadLatency", "ModelLatency"):
            pairs = [(g[key], g["Invocations"]) for g in groups
                     if isinstance(g.get(key), (int, float)) and isinstance(g.get("Invocations"), (int, float))]
            if sum(n for _, n in pairs):
                out[key] = sum(v * n for v, n in pairs) / sum(n for _, n in pairs)
    return out


def _mean(groups: list[dict[str, Any]], key: str, weight: str, scale: float = 1.0) -> float | None:
    pairs = [(g[key], g.get(weight)) for g in groups if isinstance(g.get(key), (int, float))]
    weights = [w if isinstance(w, (int, float)) and w > 0 else 0.0 for _, w in pairs]
    if not pairs or not sum(weights):
        return None
    return sum(v * w for (v, _), w in zip(pairs, weights)) / sum(weights) * scale


def _instances(run: Run, t0: float) -> tuple[Chart | None, str]:
    need = "Instances: needs a watch file"
    if not run.samples:
        return None, need
    variants = _variants(run)
    many = len(variants) > 1
    series = []
    for v in variants:
        current, desired = [], []
        for rec in run.samples:
            for var in rec.get("variants") or []:
                if var.get("name") != v:
                    continue
                if isinstance(var.get("current_instances"), (int, float)):
                    current.append((rec["time"] - t0, float(var["current_instances"])))
                if isinstance(var.get("desired_instances"), (int, float)):
                    desired.append((rec["time"] - t0, float(var["desired_instances"])))
        series.append(Series(_named("instances", v, many), tuple(current), step=True))
        if desired != current:
            series.append(Series(_named("desired", v, many), tuple(desired), step=True, dashed=True))
    return Chart("instances", "Instances per variant", "instances", tuple(series),
                 "Numbered lines mark scaling activities and status changes (listed below the chart).",
                 y_at_least=1, integer=True), need


def _utilisation(run: Run, t0: float) -> tuple[Chart | None, str]:
    variants = _variants(run)
    many = len(variants) > 1
    series = []
    for v in variants:
        series.append(Series(_named("CPU", v, many), _metric(run, t0, v, "CPUUtilization")))
        series.append(Series(_named("memory", v, many), _metric(run, t0, v, "MemoryUtilization"), dashed=True))
    return Chart("utilisation", "CPU and memory utilisation", "%", tuple(series),
                 "CloudWatch averages over the instances. CPU can pass 100%: it is summed over vCPUs.",
                 y_at_least=100), "Utilisation: needs a watch file with CPUUtilization/MemoryUtilization"


def _subnets(run: Run, t0: float) -> tuple[Chart | None, str]:
    per_subnet: dict[str, list[Point]] = {}
    total: list[Point] = []
    spare: list[Point] = []
    for rec in run.samples:
        x = rec["time"] - t0
        for s in rec.get("subnets") or []:
            if isinstance(s.get("free_ips"), (int, float)):
                per_subnet.setdefault(f"{s.get('id')} ({s.get('az')})", []).append((x, float(s["free_ips"])))
        room = rec.get("headroom") or {}
        if isinstance(room.get("total"), (int, float)):
            total.append((x, float(room["total"])))
        if isinstance(room.get("blue_green_spare"), (int, float)):
            spare.append((x, float(room["blue_green_spare"])))
    series = [Series(f"free IPs {name}", tuple(pts), step=True) for name, pts in per_subnet.items()]
    series.append(Series("headroom (all subnets)", tuple(total), step=True))
    series.append(Series("spare for a blue/green update", tuple(spare), step=True, dashed=True))
    return Chart("subnets", "Free IP addresses per subnet and headroom", "free IP addresses", tuple(series),
                 "Headroom: how many more instances the subnets can place. Each instance takes one address; "
                 "a blue/green update needs room for the whole new fleet.", integer=True), \
        "Subnets: needs a watch file of an endpoint in a VPC"


def span(points: Iterable[Point]) -> tuple[float, float]:
    ys = [y for _, y in points]
    return (min(ys), max(ys)) if ys else (0.0, 0.0)
