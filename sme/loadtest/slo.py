"""SLO checks: pure functions from measured numbers to verdicts (used for the run and for each ladder step)."""

from __future__ import annotations

from typing import Any

LATENCY = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99", "p999_ms": "p999", "max_ms": "max"}


def evaluate(slo: dict[str, float], requests: int, failures: int, dropped: int, duration_s: float,
             latency_ms: dict[str, float | None]) -> dict[str, Any]:
    """{"passed": bool, "checks": [{"name", "limit", "actual", "passed"}]}; no traffic fails every check."""
    checks = []
    for name, limit in slo.items():
        if name in LATENCY:
            actual = latency_ms.get(LATENCY[name])
            ok = actual is not None and actual <= limit
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
