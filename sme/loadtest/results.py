"""From the load process's final tally to the files in ``--out`` (see docs/formats.md) and the SLO table.

Pure functions build ``summary.json`` and the per-second rows; ``write`` puts them on disk atomically;
``render_slo`` draws the verdicts on a console it is given.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sme.loadtest.config import LoadTest
from sme.loadtest.shapes import Schedule
from sme.loadtest.slo import evaluate
from sme.loadtest.stats import Tally, encode

CSV_HEADER = ["time", "elapsed_s", "stage", "users", "target_rps", "requests", "failures", "rps", "p50_ms",
              "p99_ms"]


def summarize(final: dict[str, Any], lt: LoadTest, target: dict[str, Any], partial: bool) -> dict[str, Any]:
    tally = Tally.from_json(final["tally"])
    started, ended = final["started_at"], final["ended_at"]
    duration = max(final.get("elapsed") or (ended - started), 1e-9)
    whole = tally.window()
    latency = whole.latency_ms()
    slo = evaluate(lt.slo, whole.requests, whole.failures, whole.dropped, duration, latency)
    return {
        "version": 1, "partial": partial,
        "target": {"kind": target["kind"], "name": target.get("endpoint") or target["name"]},
        "started_at": started, "ended_at": ended, "duration_s": round(duration, 3),
        "requests": whole.requests, "failures": whole.failures, "rps": round(whole.requests / duration, 3),
        "dropped": whole.dropped if lt.open else 0,
        "model": "open" if lt.open else "closed",
        "latency_ms": latency,
        "errors": _errors(tally.errors),
        "stages": _stages(lt, tally, final, duration),
        "stopped_after_breach": final.get("breach"),
        "slo": slo,
        "sample_response": final.get("sample"),
        "histogram": encode(whole.hist),
    }


def _errors(errors: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for key, count in sorted(errors.items(), key=lambda kv: -kv[1]):
        kind, _, code = key.partition(":")
        out.append({"kind": kind, "code": code, "count": count})
    return out


def _stages(lt: LoadTest, tally: Tally, final: dict[str, Any], duration: float) -> list[dict[str, Any]]:
    schedule = Schedule(lt.stages)
    started = final["started_at"]
    out = []
    for i, (stage, (start, end)) in enumerate(zip(lt.stages, schedule.bounds)):
        if start >= duration:
            break
        end = min(end, duration)
        w = tally.window(started + start, started + end)
        lat = w.latency_ms()
        out.append({"index": i, "kind": stage.kind, "start_s": round(start, 3), "end_s": round(end, 3),
                    "users": stage.users, "spawn_rate": stage.spawn_rate, "rate": stage.rate,
                    "requests": w.requests, "failures": w.failures, "dropped": w.dropped,
                    "rps": round(w.requests / (end - start), 3) if end > start else None,
                    "latency_ms": {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"]},
                    **({"slo": evaluate(lt.slo, w.requests, w.failures, w.dropped, end - start, lat)}
                       if stage.until_slo_breach else {})})
    return out


def timeseries(final: dict[str, Any]) -> list[list[Any]]:
    tally = Tally.from_json(final["tally"])
    started = final["started_at"]
    state = {int(k): v for k, v in final.get("per_second", {}).items()}
    seconds = sorted(set(tally.seconds) | set(state))
    rows, last = [], [None, None, None]
    for sec in range(seconds[0], seconds[-1] + 1) if seconds else []:
        last = state.get(sec, last)
        slot = tally.seconds.get(sec)
        n, f = (slot.requests, slot.failures) if slot else (0, 0)
        p50 = p99 = ""
        if slot and slot.parts:
            h = slot.histogram()
            p50, p99 = h.get_value_at_percentile(50) / 1000.0, h.get_value_at_percentile(99) / 1000.0
        stage, users, rate = last
        rows.append([sec, round(sec - started, 3), "" if stage is None else stage,
                     "" if users is None or rate is not None else users,
                     "" if rate is None else round(rate, 3), n, f, n, p50, p99])
    return rows


def write(out: Path, summary: dict[str, Any], rows: list[list[Any]]) -> None:
    from sme.state import write_atomic

    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n", mode=0o644)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    write_atomic(out / "timeseries.csv", buf.getvalue(), mode=0o644)


def render_slo(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    lat = summary["latency_ms"]
    head = (f"{summary['requests']} requests, {summary['failures']} failures, {summary['rps']:.1f} req/s"
            f"{', ' + str(summary['dropped']) + ' dropped' if summary['model'] == 'open' else ''}; "
            f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}"
            f"{' (PARTIAL: the run was stopped)' if summary['partial'] else ''}")
    console.print(head, markup=False)
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


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:g} ms"
