"""CPU and memory at a candidate's knee, from its watch, and what they say about the limit.

At the knee (the highest step that held the SLO) a candidate whose CPU was nearly all busy was limited by the
instance: more or faster vCPUs would go further. One whose CPU had room was limited by the model server (too
few workers, a model that waits on something) or by its latency, not by the instance's size: a bigger type
of the same kind would buy little. Memory close to full is a limit of its own. The figures are CloudWatch's
(``sme.report.utilisation``), CPU summed over the type's vCPUs as SageMaker reports it, so the share of the
instance that was busy is CPU / (100 x vCPUs).
"""

from __future__ import annotations

from typing import Any

CPU_BOUND = 0.8  # the share of the instance's vCPUs busy at which the instance, not the model server, is the limit
MEMORY_BOUND = 90.0  # percent of the instance's memory


def at_knee(samples: list[dict[str, Any]], started_at: float, step: Any, instance_type: str) -> dict[str, Any]:
    """The fields recommendation.json carries for the knee: cpu_pct_at_knee (CloudWatch's, 0 to 100 x vCPUs),
    cpu_pct_of_instance (0-100), memory_pct_at_knee, watch_samples_at_knee and limit (why, in words)."""
    from sme.instance_types import known
    from sme.report.utilisation import between

    u = between(samples, None, started_at + step.start_s, started_at + step.end_s)
    itype = known(instance_type)
    share = None if u.cpu_pct is None or itype is None else u.cpu_pct / (100.0 * itype.vcpus)
    return {"cpu_pct_at_knee": _round(u.cpu_pct), "cpu_pct_of_instance": _round(None if share is None else share * 100),
            "memory_pct_at_knee": _round(u.memory_pct), "watch_samples_at_knee": u.samples,
            "limit": limit(share, u.memory_pct, step.number)}


def limit(cpu_share: float | None, memory_pct: float | None, step: int) -> str:
    if cpu_share is None and memory_pct is None:
        return (f"not measured: no watch sample lies inside step {step} (a step shorter than the watch's interval, "
                "or CloudWatch not yet caught up)")
    if memory_pct is not None and memory_pct >= MEMORY_BOUND:
        return f"the instance's memory: {memory_pct:.0f}% used at the knee"
    if cpu_share is None:
        return "CPU not measured at the knee"
    if cpu_share >= CPU_BOUND:
        return (f"the instance: its vCPUs were {cpu_share:.0%} busy at the knee; more or faster vCPUs go further")
    return (f"the model server, not the instance: its vCPUs were only {cpu_share:.0%} busy at the knee (more "
            "workers, or a model that waits less, go further; a bigger instance alone buys little)")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
