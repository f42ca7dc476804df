"""Was the load generator or the machine the limit of a run? Each load process's CPU, and the verdict.

A load process is one gevent loop: it can use one core and no more. When it runs near all of that core,
it sends as fast as it can and the rate measured is its own, not the target's. When all of a machine's
cores are busy (the load processes, and on a laptop the twin and the model besides), the machine set the
rate. Either way a user must not read that number as the model's. So:

- every load process (the local runner, Locust's master, each worker) samples once a second its own CPU
  (user + system seconds per second: 1.0 is one whole core) and its machine's (the share of all cores
  busy, from the kernel's counters): ``CpuSampler``. The samples travel with the request counts
  (``stats.Recorder.drain``) and are added per stage, per process and per machine (``CpuTally``: a few
  numbers each, whatever the run's length);
- ``stage_verdict`` calls a stage limited by the load generator when, for at least SATURATED_SHARE of its
  seconds (one at least), a load process used GENERATOR_BUSY of a core or more; by the machine when a
  machine's cores were MACHINE_BUSY busy or more for as long;
- ``notices`` says it in words, for `sme loadtest`, `sme report` and the demo.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

GENERATOR_BUSY = 0.9  # of one core: a gevent process cannot use more than one
MACHINE_BUSY = 0.9  # of all the machine's cores
SATURATED_SHARE = 0.25  # of a stage's seconds


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _machine_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot; None where the kernel does not say."""
    try:
        import psutil

        t = psutil.cpu_times()
    except Exception:  # noqa: BLE001 - a machine without counters gets no machine verdict, not an error
        return None
    total = sum(t)
    return total - t.idle - getattr(t, "iowait", 0.0), total


class CpuSampler:
    """This process's CPU and its machine's, per second of wall-clock time (clock and counters injectable)."""

    def __init__(self, clock: Callable[[], float] = time.time, process: Callable[[], float] = _process_cpu_s,
                 machine: Callable[[], tuple[float, float] | None] = _machine_times):
        self._clock, self._process, self._machine = clock, process, machine
        self._last: tuple[float, float, tuple[float, float] | None] | None = None

    def sample(self) -> tuple[int, float, float | None] | None:
        """(the second the interval since the last call began in, this process's cores, the machine's busy
        share or None); None on the first call or when called again within half a second."""
        now, mine, machine = self._clock(), self._process(), self._machine()
        last = self._last
        if last is not None and now - last[0] < 0.5:
            return None
        self._last = (now, mine, machine)
        if last is None:
            return None
        busy = None
        if machine is not None and last[2] is not None and machine[1] > last[2][1]:
            busy = min(1.0, max(0.0, (machine[0] - last[2][0]) / (machine[1] - last[2][1])))
        return int(last[0]), max(0.0, (mine - last[1]) / (now - last[0])), busy


@dataclass
class Busy:
    """One process's (or machine's) CPU over a stage: seconds sampled, how many at the threshold, mean, peak."""

    seconds: int = 0
    saturated: int = 0
    total: float = 0.0
    peak: float = 0.0

    def add(self, value: float, threshold: float) -> None:
        self.seconds += 1
        self.saturated += value >= threshold
        self.total += value
        self.peak = max(self.peak, value)

    @property
    def limited(self) -> bool:
        return self.saturated >= max(1, SATURATED_SHARE * self.seconds)

    def to_json(self) -> list[float]:
        return [self.seconds, self.saturated, self.total, self.peak]

    def describe(self) -> dict[str, Any]:
        return {"mean": round(self.total / self.seconds, 3) if self.seconds else None, "peak": round(self.peak, 3),
                "saturated_share": round(self.saturated / self.seconds, 3) if self.seconds else None}


class CpuTally:
    """Per stage: each load process's CPU (by its label) and each machine's (by host name)."""

    def __init__(self) -> None:
        self.processes: dict[int, dict[str, Busy]] = {}
        self.machines: dict[int, dict[str, Busy]] = {}
        self.about: dict[str, dict[str, Any]] = {}  # process label -> its role, host and the host's cores

    def add(self, cpu: dict[str, Any], stage_of: Callable[[int], int], since: int | None) -> None:
        label, host = str(cpu["process"]), str(cpu["host"])
        self.about[label] = {"role": cpu.get("role"), "host": host, "cores": cpu.get("cores")}
        for sec, (mine, machine) in cpu["seconds"].items():
            if since is not None and int(sec) < since:  # before the run started (imports, spawning)
                continue
            stage = stage_of(int(sec))
            self.processes.setdefault(stage, {}).setdefault(label, Busy()).add(mine, GENERATOR_BUSY)
            if machine is not None:  # (each process on a host samples it: the shares stay right)
                self.machines.setdefault(stage, {}).setdefault(host, Busy()).add(machine, MACHINE_BUSY)

    def to_json(self) -> dict[str, Any]:
        def table(t: dict[int, dict[str, Busy]]) -> dict[str, Any]:
            return {str(s): {k: b.to_json() for k, b in v.items()} for s, v in t.items()}
        return {"processes": table(self.processes), "machines": table(self.machines), "about": self.about}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "CpuTally":
        t = cls()
        for name, target in (("processes", t.processes), ("machines", t.machines)):
            for stage, entries in ((data or {}).get(name) or {}).items():
                target[int(stage)] = {k: Busy(int(v[0]), int(v[1]), float(v[2]), float(v[3])) for k, v in entries.items()}
        t.about = dict((data or {}).get("about") or {})
        return t


def stage_verdict(tally: CpuTally, stage: int) -> dict[str, Any]:
    """summary.json's ``limited_by`` of one stage (None for a verdict with no samples to base it on)."""
    processes, machines = tally.processes.get(stage, {}), tally.machines.get(stage, {})
    busiest = max(processes.items(), key=lambda kv: kv[1].total / max(kv[1].seconds, 1), default=None)
    machine = max(machines.items(), key=lambda kv: kv[1].total / max(kv[1].seconds, 1), default=None)
    return {"load_generator": any(b.limited for b in processes.values()) if processes else None,
            "machine": any(b.limited for b in machines.values()) if machines else None,
            "busiest_process": {"process": busiest[0], **busiest[1].describe()} if busiest else None,
            "busiest_machine": {"host": machine[0], **machine[1].describe()} if machine else None}


def run_verdict(tally: CpuTally, stage_verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's top-level ``limited_by``: any stage's verdict, and each process's and machine's CPU."""
    def whole(table: dict[int, dict[str, Busy]]) -> dict[str, Busy]:
        out: dict[str, Busy] = {}
        for entries in table.values():
            for key, b in entries.items():
                w = out.setdefault(key, Busy())
                w.seconds, w.saturated, w.total = w.seconds + b.seconds, w.saturated + b.saturated, w.total + b.total
                w.peak = max(w.peak, b.peak)
        return out

    def any_of(key: str) -> bool | None:
        known = [v[key] for v in stage_verdicts if v.get(key) is not None]
        return any(known) if known else None

    return {"load_generator": any_of("load_generator"), "machine": any_of("machine"),
            "thresholds": {"process_cores": GENERATOR_BUSY, "machine_busy": MACHINE_BUSY,
                           "share_of_stage": SATURATED_SHARE},
            "processes": [{"process": k, **{x: tally.about.get(k, {}).get(x) for x in ("role", "host")},
                           **b.describe()} for k, b in sorted(whole(tally.processes).items())],
            "machines": [{"host": k, "cores": next((a.get("cores") for a in tally.about.values() if a.get("host") == k),
                                                   None), **b.describe()} for k, b in sorted(whole(tally.machines).items())]}


def notices(summary: dict[str, Any]) -> list[str]:
    """One sentence per stage that a load process or the machine limited (summary.json's ``limited_by``)."""
    out = []
    for stage in summary.get("stages") or []:
        verdict = stage.get("limited_by") or {}
        name = f"stage {int(stage.get('index', 0)) + 1}"
        rate = stage.get("rps")
        measured = f"the {rate:,.0f} req/s measured there" if isinstance(rate, (int, float)) else "its numbers"
        if verdict.get("load_generator"):
            p = verdict.get("busiest_process") or {}
            out.append(f"{name}: the load generator was the limit: load process {p.get('process')} used "
                       f"{_pct(p.get('mean'))} of a core on average (at least {GENERATOR_BUSY:.0%} for "
                       f"{_pct(p.get('saturated_share'))} of the stage), so {measured} is what it could send, not "
                       "what the target can take; add load processes (`processes:` in the load-test file) or "
                       "machines (--master/--worker)")
        if verdict.get("machine"):
            m = verdict.get("busiest_machine") or {}
            out.append(f"{name}: the machine was the limit: {m.get('host')}'s cores were {_pct(m.get('mean'))} busy "
                       f"on average (at least {MACHINE_BUSY:.0%} for {_pct(m.get('saturated_share'))} of the stage), "
                       f"so {measured} is this machine's, not the target's (with a local twin, the model, the twin "
                       "and the load generator share its cores)")
    return out


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "?"
