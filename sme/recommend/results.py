"""DIR/recommendation.json: each candidate's knee and cost at the peak, and the best one with why.

Per candidate, from its run folder (what `sme loadtest` wrote), through ``sme.capacity.plan`` with the
candidate's instance count and the sweep's SLO (so a knee here is exactly `sme plan-capacity`'s):

- ``knee_rps``: successful req/s of the highest step that held the SLO, for the whole candidate (its
  ``count`` instances, or the serverless endpoint); ``p99_ms_at_knee`` that step's p99;
- instances: ``usd_per_hour`` one instance's price; ``instances_for_peak`` = ceil(peak / (knee per
  instance)), the fewest that hold the SLO at the peak; ``usd_per_hour_at_peak`` = instances x price;
- serverless: no instances and no idle cost; a request costs its memory x its duration (the knee step's
  mean latency, an upper bound of the billed inference time) at the compute rate, plus its bytes in and
  out; ``usd_per_hour_at_peak`` = that x peak x 3600; it passes only if its knee reaches the peak (it cannot
  scale past max_concurrency);
- ``usd_per_million`` = usd_per_hour_at_peak / (peak x 3600) x 1e6 (``sme.capacity.cost_per_million``);
- with ``watch:``, an instance candidate's CPU and memory at the knee and what limited it
  (``sme.recommend.knee_usage``).

``best`` is the passing candidate cheapest at the peak. Every number is the candidate's own run's: a
candidate without a knee (no step held, or it failed) has nulls, never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sme.recommend.config import Candidate, Recommend


def candidate_result(rec: Recommend, c: Candidate, state: Any, out: Path, pricer: Any, region: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": c.label, "experiment": state.experiment, "status": state.status,
                           "environment": c.environment, "run": f"{c.label}/run", "knee_rps": None,
                           "p99_ms_at_knee": None, "usd_per_hour": None, "instances_for_peak": None,
                           "usd_per_hour_at_peak": None, "usd_per_million": None, "passed": False, "curve": []}
    row.update({"instance_type": c.instance_type, "count": c.count} if c.instance_type else
               {"serverless": c.serverless})
    if (out / c.label / "run" / "report.html").exists():
        row["report"] = f"{c.label}/run/report.html"
    if state.error:
        row["error"] = state.error
    run, plan = _plan(rec, c, out / c.label / "run", row)
    if plan is None:
        return row
    row["curve"] = [{"rps": round(v.step.rps, 2), "p99_ms": _round(v.step.p99_ms), "held": v.held} for v in plan.steps]
    if plan.knee is None:
        row["why"] = "no step held the SLO"
        return row
    row["knee_rps"] = round(plan.knee.step.rps, 2)
    row["p99_ms_at_knee"] = round(plan.knee.step.p99_ms, 3)
    if c.instance_type:
        _instance_cost(row, rec, c, plan, pricer.price(c.instance_type, region))
        if rec.watch_interval is not None:
            from sme.recommend.knee_usage import at_knee

            row.update(at_knee(run.samples, run.started_at, plan.knee.step, c.instance_type))
    else:
        _serverless_cost(row, rec, c, plan, out / c.label / "run", region)
    return row


def _plan(rec: Recommend, c: Candidate, run_dir: Path, row: dict[str, Any]) -> tuple[Any, Any]:
    from sme.capacity import plan
    from sme.errors import UserError
    from sme.report.rundir import load_run

    if not run_dir.exists():
        row["why"] = "not measured"
        return None, None
    try:
        run = load_run(run_dir)
        return run, plan(run, rec.peak_rps, rec.slo["p99_ms"], 1.0, c.count, 1, rec.slo.get("error_rate"))
    except UserError as exc:
        row["why"] = exc.message
        return None, None


def _instance_cost(row: dict[str, Any], rec: Recommend, c: Candidate, plan: Any, price: Any) -> None:
    from sme.capacity import cost_per_hour, cost_per_million

    row["instances_for_peak"] = plan.instances_no_headroom
    row["price_source"] = price.source + (f" ({price.note})" if price.note else "")
    row["passed"] = True
    if price.usd_per_hour is None:
        row["why"] = f"no price for {c.instance_type}"
        return
    at_peak = cost_per_hour(plan.instances_no_headroom, price.usd_per_hour)
    row.update(usd_per_hour=price.usd_per_hour, usd_per_hour_at_peak=round(at_peak, 4),
               usd_per_million=round(cost_per_million(at_peak, rec.peak_rps), 6))


def _serverless_cost(row: dict[str, Any], rec: Recommend, c: Candidate, plan: Any, run_dir: Path,
                     region: str) -> None:
    from sme.report.kind_cost import ServerlessUsage, serverless_cost, table_rates, total
    from sme.report.pricing import load_table

    step = _summary_step(run_dir, plan.knee.step.number)
    mean_ms = ((step or {}).get("latency_ms") or {}).get("mean") or plan.knee.step.p99_ms
    sizes = (step or {}).get("bytes") or {}
    usage = ServerlessUsage(int(c.serverless["memory_mb"]), mean_ms / 1000.0, int(sizes.get("sent_mean") or 0),
                            int(sizes.get("received_mean") or 0))
    rates = table_rates(load_table(), region)
    per_request = total(serverless_cost(usage, rates))
    row["price_source"] = rates.source
    row["passed"] = plan.knee.step.rps >= rec.peak_rps
    if not row["passed"]:
        row["why"] = (f"its knee ({plan.knee.step.rps:.1f} req/s) is below the peak {rec.peak_rps:g} req/s, and "
                      f"it cannot scale past max_concurrency {c.serverless['max_concurrency']}")
    if per_request is not None:
        at_peak = per_request * rec.peak_rps * 3600
        row.update(usd_per_hour_at_peak=round(at_peak, 4), usd_per_million=round(per_request * 1e6, 6))


def _summary_step(run_dir: Path, number: int) -> dict[str, Any] | None:
    import json

    try:
        stages = json.loads((run_dir / "summary.json").read_text()).get("stages") or []
    except (OSError, ValueError):
        return None
    return next((s for s in stages if isinstance(s, dict) and int(s.get("index", -1)) + 1 == number), None)


def best_of(rows: list[dict[str, Any]], rec: Recommend) -> dict[str, Any] | None:
    priced = sorted((r for r in rows if r["passed"] and r["usd_per_hour_at_peak"] is not None),
                    key=lambda r: r["usd_per_hour_at_peak"])
    if not priced:
        return None
    best = priced[0]
    how = (f"{best['instances_for_peak']} x {best['instance_type']}" if best.get("instance_type")
           else f"serverless {best['serverless']['memory_mb']} MB")
    why = (f"the cheapest that holds p99 <= {rec.slo['p99_ms']:g} ms at {rec.peak_rps:g} req/s: {how} = "
           f"${best['usd_per_hour_at_peak']:,.2f}/h (knee {best['knee_rps']:g} req/s, p99 {best['p99_ms_at_knee']:.1f} ms)")
    if len(priced) > 1:
        nxt = priced[1]
        why += f"; next: {nxt['name']} at ${nxt['usd_per_hour_at_peak']:,.2f}/h"
    return {"name": best["name"], "why": why}


def machine_note() -> str | None:
    """On a local AWS the numbers rank candidates on this machine; AWS's absolute figures differ."""
    from sme.aws import is_loopback
    from sme.instance_types import table

    url = os.environ.get("AWS_ENDPOINT_URL") or ""
    if not (url and is_loopback(url)):
        return None
    return (f"local numbers: these rank the candidates on this machine ({len(os.sched_getaffinity(0))} cores), not "
            f"on AWS. Each local instance ran on its type's share of this machine (one core per 2 vCPUs, one "
            f"worker per vCPU; vCPUs from sme's instance-type table of {table()['date']}); measure on AWS for "
            "absolute rates.")


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Passing candidates cheapest first, then the others."""
    inf = float("inf")
    return sorted(rows, key=lambda r: (not r["passed"], r["usd_per_hour_at_peak"] if r["usd_per_hour_at_peak"]
                                       is not None else inf, r["name"]))


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)
