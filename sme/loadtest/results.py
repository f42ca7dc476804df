"""From the load process's tally to ``summary.json`` (see docs/formats.md) and the SLO table.

``summarize`` is pure: the load process calls it for the summary it refreshes while the run goes, and
sme for the final one. ``write`` puts it on disk atomically; ``render_slo`` draws the verdicts on a
console it is given. (``timeseries.csv`` is written by the load process as the run goes: timeseries.py.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from sme.loadtest.config import Stage
from sme.loadtest.limits import notices, run_verdict, stage_verdict
from sme.loadtest.shapes import Schedule
from sme.loadtest.slo import evaluate
from sme.loadtest.hdr import encode
from sme.loadtest.stats import Tally, Window


def summarize(final: dict[str, Any], stages: Sequence[Stage], slo: dict[str, float], open_model: bool,
              target: dict[str, Any], partial: bool, in_progress: bool = False) -> dict[str, Any]:
    tally = final["tally"] if isinstance(final["tally"], Tally) else Tally.from_json(final["tally"])
    started, ended = final["started_at"], final["ended_at"]
    duration = max(final.get("elapsed") or (ended - started), 1e-9)
    whole = tally.whole
    latency = whole.latency_ms()
    stream = stream_numbers(whole, duration, latency) if target.get("stream") else None
    stages_out = _stages(stages, slo, tally, duration, stream is not None)
    return {
        "version": 1, "partial": partial, "in_progress": in_progress,
        "target": {"kind": target["kind"], "name": target.get("endpoint") or target["name"]},
        "started_at": started, "ended_at": ended, "duration_s": round(duration, 3),
        "requests": whole.requests, "failures": whole.failures, "rps": round(whole.requests / duration, 3),
        "dropped": whole.dropped if open_model else 0,
        "model": "open" if open_model else "closed",
        "latency_ms": latency,
        **({"stream": stream} if stream is not None else {}),
        "errors": _errors(tally.errors),
        "stages": stages_out,
        "limited_by": run_verdict(tally.cpu, [s["limited_by"] for s in stages_out]),
        "stopped_after_breach": final.get("breach"),
        "slo": evaluate(slo, whole.requests, whole.failures, whole.dropped, duration, latency, stream),
        "sample_response": final.get("sample"),
        "histogram": encode(whole.histogram()),
        **({"async": final["async"]} if final.get("async") else {}),
        # bodies sent and received (what serverless bills as data processed): not for a streamed answer (its
        # bytes are read past Locust's count) or an asynchronous one (its input and output are S3 objects)
        **({"bytes": {"sent": tally.bytes[0], "received": tally.bytes[1]}}
           if not target.get("stream") and not final.get("async") else {}),
    }


def stream_numbers(w: Window, duration_s: float, e2e: dict[str, Any] | None = None) -> dict[str, Any]:
    """A window's streamed answers: time to first token and inter-token latency (p50, p90, p99, max, from
    their full histograms), end-to-end latency (the request's own: to the last byte), output tokens."""
    part = w.stream
    pick = ("p50", "p90", "p99", "max")
    ttft, itl = (part.ttft.latency_ms(), part.itl.latency_ms()) if part else ({}, {})
    e2e = e2e or w.latency_ms()
    tokens = part.tokens if part else 0
    return {"ttft_ms": {k: ttft.get(k) for k in pick}, "itl_ms": {k: itl.get(k) for k in pick},
            "e2e_ms": {k: e2e.get(k) for k in pick}, "output_tokens": tokens,
            "output_tokens_per_s": round(tokens / duration_s, 3) if duration_s > 0 else None,
            "requests_with_tokens": part.with_tokens if part else 0}


def _errors(errors: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for key, count in sorted(errors.items(), key=lambda kv: -kv[1]):
        kind, _, code = key.partition(":")
        code, _, error_code = code.partition(":")
        out.append({"kind": kind, "code": code, **({"error_code": error_code} if error_code else {}), "count": count})
    return out


def _stages(stages: Sequence[Stage], slo: dict[str, float], tally: Tally, duration: float,
            streamed: bool = False) -> list[dict[str, Any]]:
    """One entry per stage the run reached. Each second of the run counts in one stage (see
    Schedule.stage_of_second), so the stages' requests add up to the run's."""
    schedule = Schedule(stages)
    schedule.end = min(schedule.end, duration)
    bounds = [(i, start, min(end, duration)) for i, (start, end) in enumerate(schedule.bounds)
              if start < duration or i == 0]
    windows = {i: tally.stages.get(i) or Window() for i, _, _ in bounds}
    for i, w in tally.stages.items():  # seconds counted in a stage the run then did not reach (a ladder cut short)
        if i not in windows:
            windows[bounds[-1][0]].merge(w)
    out = []
    for i, start, end in bounds:
        stage, w = stages[i], windows[i]
        lat = w.latency_ms()
        # the seconds counted in this stage (see Schedule.stage_of_second): none for a stage shorter than
        # a second whose seconds all count in its neighbours, which then measured no rate of its own
        whole_seconds = math.ceil(end - 0.5) - math.ceil(start - 0.5)
        stream = stream_numbers(w, whole_seconds, lat) if streamed else None
        out.append({"index": i, "kind": stage.kind, "start_s": round(start, 3), "end_s": round(end, 3),
                    "users": stage.users, "spawn_rate": stage.spawn_rate, "rate": stage.rate,
                    "requests": w.requests, "failures": w.failures, "dropped": w.dropped,
                    "rps": round(w.requests / whole_seconds, 3) if whole_seconds > 0 else None,
                    "latency_ms": {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"]},
                    **({"stream": stream} if stream is not None else {}),
                    "limited_by": stage_verdict(tally.cpu, i),
                    "steady": _steady(tally.steady(i), len(schedule.steady_seconds(i))),
                    **({"slo": evaluate(slo, w.requests, w.failures, w.dropped, end - start, lat, stream)}
                       if stage.until_slo_breach else {})})
    return out


def _steady(w: Window, seconds: int) -> dict[str, Any]:
    """A stage's steady seconds (Schedule.steady_seconds): what plan-capacity judges a step by."""
    lat = w.latency_ms()
    return {"seconds": seconds, "requests": w.requests, "failures": w.failures, "dropped": w.dropped,
            "rps": round(w.requests / seconds, 3) if seconds else None,
            "latency_ms": {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"]}}


def write(out: Path, summary: dict[str, Any]) -> None:
    from sme.state import write_atomic

    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n", mode=0o644)


def render_slo(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    lat = summary["latency_ms"]
    head = (f"{summary['requests']} requests, {summary['failures']} failures, {summary['rps']:.1f} req/s"
            f"{', ' + str(summary['dropped']) + ' dropped' if summary['model'] == 'open' else ''}; "
            f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}"
            f"{' (PARTIAL: the run was stopped)' if summary['partial'] else ''}")
    console.print(head, markup=False)
    if "stream" in summary:
        st = summary["stream"]
        console.print(f"stream: {st['output_tokens']} output tokens ({_rate(st['output_tokens_per_s'])} tokens/s) "
                      f"from {st['requests_with_tokens']} answers; time to first token p50 {_ms(st['ttft_ms']['p50'])}, "
                      f"p99 {_ms(st['ttft_ms']['p99'])}; inter-token p50 {_ms(st['itl_ms']['p50'])}, "
                      f"p99 {_ms(st['itl_ms']['p99'])}", markup=False)
    if summary.get("async"):
        a = summary["async"]
        console.print(f"asynchronous: {a['submitted']} submitted: {a['succeeded']} succeeded, {a['failed']} failed, "
                      f"{a['pending']} still pending at the end (latency: send until the result object was seen)",
                      markup=False)
    for notice in notices(summary):
        console.print(f"note: {notice}", markup=False)
    checks = summary["slo"]["checks"]
    if not checks:
        console.print("no SLO set (add `slo:` to the load-test file to get a verdict)", markup=False)
        return
    table = Table(title="SLO", title_justify="left")
    for col in ("check", "limit", "actual", "verdict"):
        table.add_column(col, justify="left" if col in ("check", "verdict") else "right")
    for c in checks:
        table.add_row(c["name"], f"{c['limit']:g}", "-" if c["actual"] is None else f"{c['actual']:g}",
                      "[green]pass[/]" if c["passed"] else "[red bold]FAIL[/]")
    console.print(table)


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:g} ms"
