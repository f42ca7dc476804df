"""SLO checks: pure functions from measured numbers to verdicts (used for the run and for each ladder step)."""

from __future__ import annotations

from typing import Any

LATENCY = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99", "p999_ms": "p999", "max_ms": "max"}
STREAM = {f"{kind}_{p}_ms": (f"{kind}_ms", p) for kind in ("ttft", "itl") for p in ("p50", "p90", "p99")}


def evaluate(slo: dict[str, float], requests: int, failures: int, dropped: int, duration_s: float,
             latency_ms: dict[str, float | None], stream: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"passed": bool, "checks": [{"name", "limit", "actual", "passed"}]}; no traffic fails every check.
    ``stream``: the streamed answers' numbers (results.stream_numbers), for the ttft_/itl_ keys."""
    checks = []
    for name, limit in slo.items():
        if name in LATENCY:
            actual = latency_ms.get(LATENCY[name])
            ok = actual is not None and actual <= limit
        elif name in STREAM:
            kind, p = STREAM[name]
            actual = ((stream or {}).get(kind) or {}).get(p)
            ok = actual is not None and actual <= limit
        elif name == "min_output_tokens_per_s":
            actual = (stream or {}).get("output_tokens_per_s")
            ok = actual is not None and actual >= limit
        elif name == "error_rate":
            actual = failures / requests if requests else None
            ok = actual is not None and actual <= limit
        elif name == "dropped_rate":
            due = requests + dropped
            actual = dropped / due if due else None
            ok = actual is not None and actual <= limit
        elif name == "min_rps":
            actual = requests / duration_s if duration_s > 0 else None
            ok = actual is not None and actual >= limit
        else:
            continue
        checks.append({"name": name, "limit": limit, "actual": None if actual is None else round(actual, 6),
                       "passed": bool(ok)})
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
