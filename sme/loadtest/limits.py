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

A load process can also read an answer, or a streamed token, late for moments too short to show in a
second's CPU: its own work holding the loop, or the machine giving its thread no core (another process's
burst, a neighbour on a shared host). Whatever waited then is measured as the target's latency. So every
load process runs a ``LoopProbe``: a timer every PROBE_EVERY_S that notes how late it fired, and on Linux
how long the loop's thread waited for a core (schedstat: time runnable but not running) since the last
one. A wait for a core cannot be cut by a read (the thread is not running), so each one lies within one
interval: the largest interval's wait is the longest single wait. Each second keeps its largest of both; each stage
reports them (``loop_delay_ms``) and ``notices`` names a stage whose loop was LATE_NOTABLE_S late.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

GENERATOR_BUSY = 0.9  # of one core: a gevent process cannot use more than one
MACHINE_BUSY = 0.9  # of all the machine's cores
SATURATED_SHARE = 0.25  # of a stage's seconds
PROBE_EVERY_S = 0.02  # how often a load process checks how late its loop is
LATE_NOTABLE_S = 0.02  # a loop this late (its process read an answer or token this much after it came) is noted
# (a run's first moments, users spawning and connecting, take up to ~15 ms on a quiet 2-core VM)


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


def _thread_wait_counter() -> Callable[[], float] | None:
    """A reader of the calling thread's seconds spent ready to run but waiting for a core, since it started
    (the second field of Linux's /proc/thread-self/schedstat, in ns; the file stays open for the process's
    life and keeps naming this thread); None where the kernel does not say."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        int(os.pread(fd, 64, 0).split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return lambda: int(os.pread(fd, 64, 0).split()[1]) / 1e9


class LoopProbe:
    """How late a load process's loop is: ``tick`` is called by a timer that was due at ``due`` (on the
    clock); ``take`` gives the largest lateness, and the largest wait for a core between two ticks, since the
    last take (seconds; the wait None where unknown). Clock and wait counter injectable."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 waited: Callable[[], float] | None | bool = True):
        self._clock = clock
        self._waited = _thread_wait_counter() if waited is True else waited or None
        self._seen = self._waited() if self._waited else 0.0
        self.late = self.wait = 0.0

    def tick(self, due: float) -> None:
        late = self._clock() - due
        if late > self.late:
            self.late = late
        if self._waited is not None:
            seen = self._waited()
            if seen - self._seen > self.wait:
                self.wait = seen - self._seen
            self._seen = seen

    def take(self) -> tuple[float, float | None]:
        out = (self.late, self.wait if self._waited is not None else None)
        self.late = self.wait = 0.0
        return out


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
        self.late: dict[int, dict[str, Busy]] = {}  # each load process's loop: its lateness (LoopProbe) ...
        self.waits: dict[int, dict[str, Busy]] = {}  # ... and its longest wait for a core, per second
        self.about: dict[str, dict[str, Any]] = {}  # process label -> its role, host and the host's cores

    def add(self, cpu: dict[str, Any], stage_of: Callable[[int], int], since: int | None) -> None:
        label, host = str(cpu["process"]), str(cpu["host"])
        self.about[label] = {"role": cpu.get("role"), "host": host, "cores": cpu.get("cores")}
        for sec, (mine, machine, *loop) in cpu["seconds"].items():  # (loop: [late, wait]; none from an older sme)
            if since is not None and int(sec) < since:  # before the run started (imports, spawning)
                continue
            stage = stage_of(int(sec))
            self.processes.setdefault(stage, {}).setdefault(label, Busy()).add(mine, GENERATOR_BUSY)
            if machine is not None:  # (each process on a host samples it: the shares stay right)
                self.machines.setdefault(stage, {}).setdefault(host, Busy()).add(machine, MACHINE_BUSY)
            if loop:
                self.late.setdefault(stage, {}).setdefault(label, Busy()).add(loop[0], LATE_NOTABLE_S)
                if loop[1] is not None:
                    self.waits.setdefault(stage, {}).setdefault(label, Busy()).add(loop[1], LATE_NOTABLE_S)

    def to_json(self) -> dict[str, Any]:
        def table(t: dict[int, dict[str, Busy]]) -> dict[str, Any]:
            return {str(s): {k: b.to_json() for k, b in v.items()} for s, v in t.items()}
        return {"processes": table(self.processes), "machines": table(self.machines), "late": table(self.late),
                "waits": table(self.waits), "about": self.about}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "CpuTally":
        t = cls()
        for name, target in (("processes", t.processes), ("machines", t.machines), ("late", t.late),
                             ("waits", t.waits)):
            for stage, entries in ((data or {}).get(name) or {}).items():
                target[int(stage)] = {k: Busy(int(v[0]), int(v[1]), float(v[2]), float(v[3])) for k, v in entries.items()}
        t.about = dict((data or {}).get("about") or {})
        return t


def stage_verdict(tally: CpuTally, stage: int) -> dict[str, Any]:
    """summary.json's ``limited_by`` of one stage (None for a verdict with no samples to base it on)."""
    processes, machines = tally.processes.get(stage, {}), tally.machines.get(stage, {})
    busiest = max(processes.items(), key=lambda kv: kv[1].total / max(kv[1].seconds, 1), default=None)
    machine = max(machines.items(), key=lambda kv: kv[1].total / max(kv[1].seconds, 1), default=None)
    latest = max(tally.late.get(stage, {}).items(), key=lambda kv: kv[1].peak, default=None)
    waits = tally.waits.get(stage, {})
    return {"load_generator": any(b.limited for b in processes.values()) if processes else None,
            "machine": any(b.limited for b in machines.values()) if machines else None,
            "busiest_process": {"process": busiest[0], **busiest[1].describe()} if busiest else None,
            "busiest_machine": {"host": machine[0], **machine[1].describe()} if machine else None,
            "loop_delay_ms": {"process": latest[0], "peak": _ms(latest[1].peak),
                              "notable_seconds": latest[1].saturated,
                              "cpu_wait_peak": _ms(max(b.peak for b in waits.values())) if waits else None}
            if latest else None}


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
                           "share_of_stage": SATURATED_SHARE, "loop_delay_ms": LATE_NOTABLE_S * 1000.0},
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
        late = verdict.get("loop_delay_ms") or {}
        if (late.get("peak") or 0.0) >= LATE_NOTABLE_S * 1000.0:
            core = late.get("cpu_wait_peak")
            why = (f" (waiting up to {core:,.0f} ms at once for a free core)" if core is not None and core >= 1.0
                   else "")
            out.append(f"{name}: load process {late.get('process')} read answers up to {late['peak']:,.0f} ms after "
                       f"they came{why}: the stage's latency tails (p99, max) may hold that much time that was the "
                       "load process's, not the target's")
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "?"
