"""`sme recommend -c recommend.yaml --out DIR` and `sme recommend --resume DIR`: the whole command.

    config.load (exit 2) -> sweep.prepare (files, sweep.json) -> [resume: sweep.clean_up_leftovers]
      -> checks.check_parallel (exit 2) + checks.preflight_each (exit 6) -> sweep.run_pool
      -> results -> DIR/recommendation.json + DIR/report.html (both atomic)

Leftovers: every candidate is its own experiment (``<base>-<sweep id>-<n>``, listed in DIR/sweep.json) and its
resources carry the tags ``sme:experiment=<that name>`` and ``sme-sweep=<sweep id>``; `sme teardown --name
<candidate experiment>` finds them by the first tag even without a state file, `sme teardown --sweep <id>`
finds every candidate by the second (``sme.recommend.leftovers``), and ``--resume`` runs that teardown for
every candidate sweep.json marks as deployed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sme.errors import ExitStatus, UserError
from sme.recommend import checks, progress, results
from sme.recommend import config as rconfig
from sme.recommend.sweep import Sweep, SweepOptions, clean_up_leftovers, prepare, run_pool


def run_recommend(config_path: str | None, out: str | None, resume: str | None, env: Any, *,
                  poll: str = "5s", prices: str = "auto") -> int:
    if resume:
        out_dir = Path(resume)
        resumed: progress.Progress | None = progress.read(out_dir)
        config_path = config_path or resumed.config
    elif config_path and out:
        out_dir, resumed = Path(out), None
        if (out_dir / progress.FILE).exists():
            raise UserError(f"{out_dir} already holds a sweep", hint=f"continue it with --resume {out_dir}, or "
                            "pass another --out")
    else:
        raise UserError("nothing to run", hint="pass -c recommend.yaml --out DIR, or --resume DIR")
    rec = rconfig.load(config_path)
    say = env.info
    note = results.machine_note()
    if note:
        say(f"note: {note}")
    sweep = Sweep(rec, SweepOptions(out_dir, poll=poll, prices=prices), prepare(rec, out_dir, resumed), say)
    if resumed:
        clean_up_leftovers(sweep)
    aws = _aws(rec)
    checks.check_parallel(rec, aws, say)
    pending = [c for c in rec.candidates if sweep.progress.get(c.label).status not in ("done", "failed")]
    checks.preflight_each([(c.label, _experiment(sweep.folder(c))) for c in pending], aws, say)
    sweep.progress.save()
    say(f"sweep {sweep.progress.id}: {len(pending)} candidate(s) to measure, {rec.parallel} at once; "
        f"progress in {out_dir / progress.FILE}")
    run_pool(sweep)
    doc = write_results(rec, sweep, note, prices)
    for row in doc["candidates"]:
        say(summary_line(row))
    say(f"best: {doc['best']['name']}: {doc['best']['why']}" if doc["best"] else "no candidate met the SLO")
    say(f"wrote {out_dir / 'recommendation.json'} and {out_dir / 'report.html'}")
    return int(ExitStatus.OK if doc["best"] else ExitStatus.SLO_FAILED)


def summary_line(row: dict[str, Any]) -> str:
    if row["knee_rps"] is None:
        return f"{row['name']}: no knee ({row.get('error') or row.get('why') or 'not measured'})"
    cost = "cost unknown" if row["usd_per_hour_at_peak"] is None else f"${row['usd_per_hour_at_peak']:,.2f}/h at the peak"
    return (f"{row['name']}: knee {row['knee_rps']:g} req/s at p99 {row['p99_ms_at_knee']:.1f} ms; {cost}; "
            f"SLO {'met' if row['passed'] else 'not met'}" + (f"; limit: {row['limit']}" if row.get("limit") else ""))


def write_results(rec: rconfig.Recommend, sweep: Sweep, note: str | None, prices: str) -> dict[str, Any]:
    from sme.recommend.report import render
    from sme.report.pricing import Pricer
    from sme.state import write_atomic

    region = rec.base.get("region") or _env_region()
    pricer = Pricer(use_api=prices == "auto")
    rows = [results.candidate_result(rec, c, sweep.progress.get(c.label), sweep.opts.out, pricer, region)
            for c in rec.candidates]
    doc = {"sweep": sweep.progress.id, "config": rec.source, "experiment": str(rec.experiment_path),
           "slo": rec.slo, "peak_rps": rec.peak_rps, "parallel": rec.parallel, "region": region,
           "machine_note": note, "best": results.best_of(rows, rec), "candidates": results.ranked(rows),
           "sweep_cpu_s": round(time.process_time(), 3)}  # this process's own CPU: the sweep's bookkeeping
    write_atomic(sweep.opts.out / "recommendation.json", json.dumps(doc, indent=2) + "\n", mode=0o644)
    write_atomic(sweep.opts.out / "report.html", render(doc), mode=0o644)
    return doc


def _experiment(folder: Path) -> Any:
    from sme.config import Overrides, load_experiment

    return load_experiment(str(folder / "sme.yaml"), Overrides())


def _aws(rec: rconfig.Recommend) -> Any:
    from sme.deploy import aws_for

    return aws_for(rec.base.get("region"), rec.base.get("profile"))


def _env_region() -> str:
    import os

    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
