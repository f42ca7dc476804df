"""CPU and memory utilisation during a stretch of a run (a load stage, a ladder's knee), from its watch samples.

A watch sample's CloudWatch values cover its ``window`` (the period before its slot). Only samples whose window
lies inside the stretch count, so a stage's figure is never diluted by the stage before it; their values are
averaged. No such sample (a stage shorter than the watch's interval, or CloudWatch not yet caught up: SageMaker
publishes a minute or two late) gives ``None``, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLACK_S = 0.5  # a window that starts half a second before the stage (clocks, rounding) still belongs to it


@dataclass(frozen=True)
class Utilisation:
    cpu_pct: float | None  # CloudWatch's CPUUtilization: summed over the instance's vCPUs (0 to 100 x vCPUs)
    memory_pct: float | None
    samples: int  # watch samples the figures average


def between(samples: list[dict[str, Any]], variant: str | None, start: float, end: float) -> Utilisation:
    """Mean CPUUtilization and MemoryUtilization of ``variant`` (None: every variant's values together) over the
    samples whose window lies within [start, end] (epoch seconds)."""
    cpu: list[float] = []
    mem: list[float] = []
    used = 0
    for rec in samples:
        window = rec.get("window")
        if not (isinstance(window, list) and len(window) == 2 and start - SLACK_S <= window[0]
                and window[1] <= end + SLACK_S):
            continue
        groups = [g for name, g in (rec.get("metrics") or {}).items() if variant is None or name == variant]
        got = False
        for g in groups:
            for key, into in (("CPUUtilization", cpu), ("MemoryUtilization", mem)):
                if isinstance((g or {}).get(key), (int, float)):
                    into.append(float(g[key]))
                    got = True
        used += got
    return Utilisation(_mean(cpu), _mean(mem), used)


def cell(u: Utilisation) -> str:
    """'CPU 183%, memory 12%' for a table; empty when nothing was measured."""
    parts = [f"{label} {value:.0f}%" for label, value in (("CPU", u.cpu_pct), ("memory", u.memory_pct))
             if value is not None]
    return ", ".join(parts)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
