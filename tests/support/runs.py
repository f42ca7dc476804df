"""Realistic run directories as `sme loadtest --out` and `sme watch --out` write them (docs/formats.md).

No tests here: the report and capacity tests build their inputs with these. A run is a list of stages
(duration, req/s); the client sees a latency that rises with load, the watcher sees a scale-out.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

T0 = 1_790_000_000.0


def stage_plan(stages: list[tuple[float, float]], kind: str = "rate") -> list[dict[str, Any]]:
    out, t = [], 0.0
    for i, (duration, rate) in enumerate(stages):
        out.append({"index": i, "kind": kind, "start_s": t, "end_s": t + duration, "users": None,
                    "spawn_rate": None, "rate": rate})
        t += duration
    return out


def latency_at(rate: float, knee: float | None, rng: random.Random) -> tuple[float, float]:
    """(p50, p99) in ms: flat below the knee, climbing past it."""
    base = 8.0 + rng.uniform(-0.5, 0.5)
    if knee is not None and rate > knee:
        over = rate / knee
        return base * over * 2, 40.0 * over ** 3 + 150
    return base, 24.0 + rng.uniform(-3, 3)


def write_loadtest(out: Path, stages: list[tuple[float, float]], *, knee: float | None = None,
                   fail_every: int = 0, slo_p99: float | None = 250.0, kind: str = "rate",
                   served: float | None = None, with_stage_stats: bool = True, steady: bool = True,
                   seed: int = 1, stream: Any = None) -> dict[str, Any]:
    """summary.json + timeseries.csv of a run through ``stages``; ``served`` caps the req/s answered.

    Per stage, ``steady`` (an sme that records the steady seconds' own numbers; False: an older sme)
    counts the stage's seconds but its first and last (all of them below 4 seconds), with the highest of
    their p99s as the steady p99 (these fake seconds have no latencies to make a histogram of).

    ``stream(level) -> (ttft_p50, ttft_p99, itl_p50, itl_p99, output tokens per second)`` makes it a streaming
    run: the stream columns in every row, ``stream`` in the summary and in each stage (docs/formats.md)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    plan = stage_plan(stages, kind)
    rows, per_stage = [], [{"requests": 0, "failures": 0, "p99": []} for _ in plan]
    second = 0
    for st in plan:
        while second < st["end_s"]:
            rate = st["rate"]
            n = int(min(rate, served or rate))
            f = n // fail_every if fail_every else 0
            p50, p99 = latency_at(rate, knee, rng)
            rows.append([int(T0) + second, second, st["index"], "", rate, n, f, n, round(p50, 3), round(p99, 3)]
                        + (list(stream(rate)) if stream else []))
            acc = per_stage[st["index"]]
            acc["requests"] += n
            acc["failures"] += f
            acc["p99"].append(p99)
            acc.setdefault("seconds", []).append((n, f, p99))
            second += 1
    with open(out / "timeseries.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["time", "elapsed_s", "stage", "users", "target_rps", "requests", "failures", "rps",
                    "p50_ms", "p99_ms"] + (STREAM_COLUMNS if stream else []))
        w.writerows(rows)
    total = sum(a["requests"] for a in per_stage)
    fails = sum(a["failures"] for a in per_stage)
    duration = float(second)
    p99_all = sorted(p for a in per_stage for p in a["p99"])[int(0.99 * (len(rows) - 1))] if rows else None
    if with_stage_stats:
        for st, acc in zip(plan, per_stage):
            d = st["end_s"] - st["start_s"]
            st.update({"requests": acc["requests"], "failures": acc["failures"], "dropped": 0,
                       "rps": round(acc["requests"] / d, 3),
                       "latency_ms": {"p50": 8.0, "p99": round(max(acc["p99"]), 3), "max": round(max(acc["p99"]) * 1.3, 3)}})
            if steady:
                st["steady"] = _steady(acc["seconds"])
    checks = []
    if slo_p99 is not None:
        actual = p99_all if total else None
        checks.append({"name": "p99_ms", "limit": slo_p99, "actual": actual,
                       "passed": actual is not None and actual <= slo_p99})
    summary = {
        "version": 1, "partial": False, "target": {"kind": "endpoint", "name": "churn"},
        "started_at": T0, "ended_at": T0 + duration, "duration_s": duration,
        "requests": total, "failures": fails, "rps": round(total / duration, 3), "dropped": 0, "model": "open",
        "latency_ms": {"p50": 8.0, "p90": 20.0, "p95": 22.0, "p99": p99_all, "p999": p99_all, "max": p99_all,
                       "mean": 9.0} if total else {k: None for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean")},
        "errors": [{"kind": "status", "code": "503", "count": fails}] if fails else [],
        "stages": plan, "slo": {"passed": all(c["passed"] for c in checks), "checks": checks},
        "histogram": "",
    }
    if stream:
        _stream_sections(summary, plan, stream)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


STREAM_COLUMNS = ["ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "output_tokens"]


def stream_section(ttft50: float, ttft99: float, itl50: float, itl99: float, tokens: int, seconds: float,
                   answers: int) -> dict[str, Any]:
    return {"ttft_ms": {"p50": ttft50, "p90": ttft99 * 0.9, "p99": ttft99, "max": ttft99 * 1.2},
            "itl_ms": {"p50": itl50, "p90": itl99 * 0.9, "p99": itl99, "max": itl99 * 1.5},
            "e2e_ms": {"p50": 2000.0, "p90": 2500.0, "p99": 3000.0, "max": 3200.0},
            "output_tokens": tokens, "output_tokens_per_s": round(tokens / seconds, 3) if seconds else None,
            "requests_with_tokens": answers}


def _stream_sections(summary: dict[str, Any], plan: list[dict[str, Any]], stream: Any) -> None:
    """Each stage's stream numbers are its level's (the rows hold the same per second), the run's the worst."""
    worst = [0.0] * 4
    tokens = answers = 0
    for st in plan:
        ttft50, ttft99, itl50, itl99, per_s = stream(st["rate"])
        seconds = st["end_s"] - st["start_s"]
        st["stream"] = stream_section(ttft50, ttft99, itl50, itl99, int(per_s * seconds), seconds,
                                      int(st.get("requests") or 0))
        worst = [max(a, b) for a, b in zip(worst, (ttft50, ttft99, itl50, itl99))]
        tokens += st["stream"]["output_tokens"]
        answers += st["stream"]["requests_with_tokens"]
    summary["stream"] = stream_section(*worst, tokens, summary["duration_s"], answers)


def _steady(seconds: list[tuple[int, int, float]]) -> dict[str, Any]:
    inner = seconds[1:-1] if len(seconds) >= 4 else seconds
    n, f = sum(s[0] for s in inner), sum(s[1] for s in inner)
    p99 = round(max(s[2] for s in inner), 3)
    return {"seconds": len(inner), "requests": n, "failures": f, "dropped": 0, "rps": round(n / len(inner), 3),
            "latency_ms": {"p50": 8.0, "p99": p99, "max": round(p99 * 1.3, 3)}}


def write_recorded_run(out: Path, stages: list[Any], seconds: list[list[float]],
                       slo: dict[str, float] | None = None, failed: int = 0) -> dict[str, Any]:
    """A run directory as the load process writes it, from given latencies: ``seconds[k]`` holds the latencies
    (ms) of the requests completed in second k of the run, evenly spread over it (the first ``failed`` of
    each second failed with a 503). They go through sme's own Recorder, Tally (stage and steady seconds
    from the schedule), timeseries rows and summary."""
    from sme.loadtest.results import summarize, write
    from sme.loadtest.shapes import Schedule
    from sme.loadtest.stats import Recorder, Tally
    from sme.loadtest.timeseries import TimeseriesFile, row

    schedule = Schedule(stages)
    start = int(T0)
    tally = Tally(lambda sec: schedule.stage_of_second(sec - start),
                  lambda sec, stage: sec - start in schedule.steady_seconds(stage))
    tally.first_second = start
    rec = Recorder()
    for k, latencies in enumerate(seconds):
        for j, ms in enumerate(latencies):
            rec.record(start + k + (j + 0.5) / len(latencies), ms, "status:503" if j < failed else None)
    tally.add(rec.drain(wire=False))
    out.mkdir(parents=True, exist_ok=True)
    series = TimeseriesFile(out / "timeseries.csv")
    series.append([row(sec, start, w, [tally.stage_of(sec), None, stages[tally.stage_of(sec)].rate])
                   for sec, w in tally.settle(start + len(seconds))])
    series.close()
    final = {"started_at": T0, "ended_at": T0 + schedule.end, "elapsed": schedule.end, "tally": tally}
    summary = summarize(final, stages, slo or {}, stages[0].open, {"kind": "url", "name": "hand"}, partial=False)
    write(out, summary)
    return summary


def write_watch(path: Path, duration_s: float, *, interval: float = 10.0, start_offset: float = -20.0,
                scale_out_at: float | None = 100.0, scale_in_at: float | None = None, instances: int = 1,
                variants: tuple[str, ...] = ("AllTraffic",), subnets: bool = True, missed: tuple[int, ...] = (),
                load: list[tuple[float, float]] | None = None, instance_type: str | None = None,
                serverless: dict[str, int] | None = None, counts: Any = None, extra_metrics: Any = None,
                model_latency_us: float | None = None) -> list[dict]:
    """JSON lines of a watch from ``start_offset`` s before T0 to past the end; one scale-out event.

    ``serverless``: the variant's settings as `sme watch` records them (``memory_mb`` ...); ``counts(t)``: the
    instance count at ``t`` (an asynchronous endpoint down to zero); ``extra_metrics(t)``: more metrics of the
    sample; ``model_latency_us``: a constant ModelLatency average (else one that rises with load)."""
    rng = random.Random(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    records, slot, t = [], 0, start_offset
    announced = set()
    while t <= duration_s + 2 * interval:
        due = T0 + t
        if slot in missed:
            records.append({"slot": slot, "due": due, "time": due, "missed": True})
            slot, t = slot + 1, t + interval
            continue
        count = instances + (1 if scale_out_at is not None and t >= scale_out_at else 0)
        if scale_in_at is not None and t >= scale_in_at:
            count = instances
        desired = instances + (1 if scale_out_at is not None and t >= scale_out_at - interval else 0)
        if scale_in_at is not None and t >= scale_in_at - interval:
            desired = instances
        if counts is not None:
            count = desired = counts(t)
        rate = _rate_at(load, t)
        events = []
        if scale_out_at is not None and t >= scale_out_at - interval and "out" not in announced:
            announced.add("out")
            events.append({"time": due - 3, "kind": "scaling", "id": "act-1", "variant": variants[0],
                           "status": "InProgress", "message": f"Setting desired instance count to {desired}."})
        if scale_in_at is not None and t >= scale_in_at - interval and "in" not in announced:
            announced.add("in")
            events.append({"time": due - 2, "kind": "scaling", "id": "act-2", "variant": variants[0],
                           "status": "Successful", "message": f"Setting desired instance count to {instances}."})
        metrics = {}
        for v in variants:
            per_inst = rate / max(count, 1)
            metrics[v] = {"Invocations": rate * interval, "InvocationsPerInstance": per_inst * interval,
                          "ModelLatency": ((model_latency_us or 3000 + 40 * per_inst + rng.uniform(-200, 200))
                                           if rate else None),
                          "OverheadLatency": (900 + rng.uniform(-100, 100)) if rate else None,
                          "CPUUtilization": min(95.0, 5 + per_inst * 0.45 + rng.uniform(-2, 2)),
                          "MemoryUtilization": 31.0 + rng.uniform(-0.5, 0.5), **(extra_metrics(t) if extra_metrics else {})}
        sub = []
        if subnets:
            sub = [{"id": "subnet-0a1b2c3d", "az": "us-east-1a", "free_ips": 14 - count, "sagemaker_enis": count},
                   {"id": "subnet-1a2b3c4d", "az": "us-east-1b", "free_ips": 6, "sagemaker_enis": 0}]
        room = ({"per_az": {s["az"]: s["free_ips"] for s in sub}, "total": sum(s["free_ips"] for s in sub),
                 "blue_green_spare": sum(s["free_ips"] for s in sub) - desired} if sub else None)
        record = {"slot": slot, "due": due, "time": due + 0.4, "missed": False, "interval": interval,
                  "endpoint": "churn", "status": "Updating" if count != desired else "InService",
                  "variants": [dict({"name": v, "current_instances": count, "desired_instances": desired},
                                    **({"instance_type": instance_type} if instance_type else {}),
                                    **({"serverless": serverless} if serverless else {}))
                               for v in variants],
                  "metrics": metrics, "window": [due - interval, due], "subnets": sub, "headroom": room,
                  "events": events, "errors": []}
        records.append(record)
        slot, t = slot + 1, t + interval
    with open(path, "w") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return records


def _rate_at(load: list[tuple[float, float]] | None, t: float) -> float:
    if not load:
        return 100.0 if t >= 0 else 0.0
    start = 0.0
    for duration, rate in load:
        if start <= t < start + duration:
            return rate
        start += duration
    return 0.0


def churn_run(directory: Path, *, watch: bool = True, loadtest: bool = True) -> Path:
    """A three-stage run with a scale-out in the middle: the report's reference case."""
    load = [(60.0, 50.0), (120.0, 150.0), (60.0, 50.0)]
    if loadtest:
        write_loadtest(directory, load, knee=140.0)
    if watch:
        write_watch(directory / "watch.jsonl", sum(d for d, _ in load), load=load, scale_out_at=100.0,
                    scale_in_at=220.0)
    return directory


def is_close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
