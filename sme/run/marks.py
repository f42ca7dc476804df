"""A run's events on the report: a numbered line on every chart's time axis and a verdict for each.

Read from ``DIR/run.json`` (what `sme run` did and saw) and the load's own per-second rows
(``timeseries.csv``): the errors and requests during an event are the load generator's counts over the
seconds it lasted; its p99 is the worst of those seconds' p99s (the per-second rows keep no histogram, so
no true p99 over the window can be computed, and none is claimed).

- an update: its strategy, when the endpoint went Updating and back InService and on which config, the
  errors and worst p99 meanwhile, each traffic shift step (when it began, its share of the traffic, the
  errors and worst p99 while it was in force), whether its alarms fired and in which step SageMaker rolled
  back, whether it ended on the asked config;
- a zone failure: the instances lost, the time until DescribeEndpoint counted as many as before, the
  errors meanwhile, and the addresses the replacements took in the surviving subnets;
- a scaling change: the new floor/ceiling and when the instance count was inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sme.report.rundir import Run
from sme.report.timeline import Marker
from sme.units import format_duration

RUN_LOG = "run.json"


@dataclass(frozen=True)
class Verdict:
    number: int
    at_s: float
    what: str
    outcome: str  # ok | rolled_back | failed | stopped | error | running
    verdict: str
    details: tuple[str, ...] = ()


@dataclass
class RunMarks:
    verdicts: list[Verdict] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)


def read(run: Run) -> RunMarks | None:
    """The run's events with verdicts, or None when the directory holds no run.json (not an `sme run`)."""
    try:
        record = json.loads((run.directory / RUN_LOG).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (run.has_loadtest or run.has_watch):
        return None
    t0 = run.started_at
    marks = RunMarks()
    for ev in record.get("events") or []:
        if not isinstance(ev, dict) or not isinstance(ev.get("fired_at"), (int, float)):
            continue
        verdict = judge(ev, run, t0)
        marks.verdicts.append(verdict)
        marks.markers.append(Marker(verdict.at_s, 0, "run event", f"{verdict.what}: {verdict.verdict}"))
        end = _end(ev)
        if end is not None:
            marks.markers.append(Marker(end - t0, 0, "run event", f"{verdict.what}: {_end_words(ev)}"))
    return marks


def merge(markers: list[Marker], marks: RunMarks) -> list[Marker]:
    """The timeline's own markers and the run's, renumbered in time order."""
    both = sorted([*markers, *marks.markers], key=lambda m: m.at_s)
    return [Marker(m.at_s, i + 1, m.kind, m.text) for i, m in enumerate(both)]


def judge(ev: dict[str, Any], run: Run, t0: float) -> Verdict:
    start = float(ev["fired_at"])
    end = _end(ev) or float(ev.get("ended_at") or start)
    load = _during(run, start - t0, end - t0)
    kind, outcome = ev.get("kind"), str(ev.get("outcome") or "running")
    if outcome == "error":
        return Verdict(ev["number"], start - t0, ev.get("what", kind), outcome,
                       "could not be carried out", (str(ev.get("error") or ""),))
    if kind == "deploy":
        words, details = _update(ev, t0)
        details[1:1] = _steps(ev, run, t0)
    elif kind == "fail_zone":
        words, details = _zone(ev)
    else:
        words, details = _scale(ev)
    late = float(ev.get("late_s") or 0)
    if late >= 1:
        details.append(f"fired {late:.0f}s after its time (at {ev.get('at_s')}s of the load)")
    return Verdict(ev["number"], start - t0, ev.get("what", kind), outcome, words, (*details, load))


def _update(ev: dict[str, Any], t0: float) -> tuple[str, list[str]]:
    outcome = ev.get("outcome")
    words = {"ok": f"ended on the asked config {ev.get('final_config')}",
             "rolled_back": f"rolled back: still on {ev.get('from_config')}",
             "stopped": "stopped with the run",
             }.get(outcome, f"failed (`sme deploy` exited {ev.get('exit_code')}) on {ev.get('final_config')}")
    steps = [f"{t['status']} on {t.get('config')} at {t['time'] - t0:.0f}s" for t in ev.get("transitions") or []]
    details = [f"strategy {ev.get('strategy')}; seen: " + ("; ".join(steps) or "no change")]
    alarms, fired = ev.get("alarms") or [], ev.get("alarms_fired") or []
    details.append(f"alarms fired: {', '.join(fired)}" if fired else
                   f"no alarm fired ({len(alarms)} watched)" if alarms else "no rollback alarms")
    if ev.get("failure_reason"):
        details.append(f"SageMaker's reason: {ev['failure_reason']}")
    details.append("ended on the config asked for" if ev.get("ended_on_asked") else
                   f"ended on {ev.get('final_config')}, not the asked {ev.get('asked_config')}")
    return words, details


def _steps(ev: dict[str, Any], run: Run, t0: float) -> list[str]:
    """One line per traffic shift: when it began, its share, the load while it was in force; then the rollback."""
    steps = [s for s in ev.get("traffic_steps") or [] if isinstance(s.get("time"), (int, float))]
    done = _in_service_at(ev)
    lines = []
    for i, step in enumerate(steps):
        end = steps[i + 1]["time"] if i + 1 < len(steps) else (done or float(ev.get("ended_at") or step["time"]))
        share = f"{100 * step['share']:.0f}% of the traffic" if step.get("share") is not None else "share not known"
        load = _load(run, step["time"] - t0, end - t0)
        lines.append(f"step {step['step']} at {step['time'] - t0:.0f}s: {share} on the new fleet; "
                     + (_load_words(load) if load else "no load-test rows cover it"))
    fired = ev.get("alarms_fired") or []
    if ev.get("outcome") == "rolled_back":
        cause = f"alarm {', '.join(fired)} fired" if fired else "the update failed"
        # a step shorter than sme's poll of DescribeEndpoint is not seen: the rollback still is
        during = f"during step {steps[-1]['step']}" if steps else "during a traffic step too short for sme's poll to see"
        lines.append(f"{cause} {during}; SageMaker rolled all traffic back to the old fleet"
                     + (f" (InService on {ev.get('final_config')} at {done - t0:.0f}s)" if done else ""))
    return lines


def _in_service_at(ev: dict[str, Any]) -> float | None:
    """When the endpoint was InService again after going Updating."""
    updating = False
    for t in ev.get("transitions") or []:
        updating = updating or t.get("status") == "Updating"
        if updating and t.get("status") == "InService":
            return float(t["time"])
    return None


def _zone(ev: dict[str, Any]) -> tuple[str, list[str]]:
    took = ev.get("replaced_s")
    words = (f"capacity replaced after {format_duration(took)}" if took is not None
             else "capacity not replaced while the run waited")
    lost = ev.get("lost") or []
    details = [f"{len(lost)} instance(s) lost in {ev.get('zone')}: " +
               ", ".join(f"{x.get('variant')} in {x.get('subnet')}" for x in lost),
               f"instances {_sum(ev.get('instances_before'))} before, {_sum(ev.get('instances_lowest'))} at the "
               f"lowest, {_sum(ev.get('instances_after'))} after"]
    before = {s["id"]: s for s in ev.get("subnets_before") or []}
    moved = [f"{s['id']} ({s['az']}) {before[s['id']]['free_ips']} -> {s['free_ips']}"
             for s in ev.get("subnets_after") or [] if s["id"] in before and s["az"] != ev.get("zone")]
    if moved:
        details.append("free addresses in the surviving subnets, before -> after: " + ", ".join(moved))
    return words, details


def _scale(ev: dict[str, Any]) -> tuple[str, list[str]]:
    took = ev.get("settled_s")
    bounds = f"[{ev.get('min')}, {ev.get('max')}]"
    words = (f"instances inside {bounds} after {format_duration(took)}" if took is not None
             else f"instances not inside {bounds} while the run waited")
    return words, [f"instances now {_sum(ev.get('instances'))}"]


def _during(run: Run, start_s: float, end_s: float) -> str:
    load = _load(run, start_s, end_s)
    if load is None:
        return "no load-test rows cover it"
    return f"during it ({format_duration(end_s - start_s)}): " + _load_words(load)


def _load(run: Run, start_s: float, end_s: float) -> tuple[int, int, float | None] | None:
    """(requests, errors, worst one-second p99) of the load's seconds overlapping [start_s, end_s), or None."""
    # a row is the second [elapsed_s, elapsed_s + 1): every second that overlaps counts
    rows = [r for r in run.rows if r.get("elapsed_s") is not None and start_s - 1 < r["elapsed_s"] < end_s]
    if not rows:
        return None
    requests = int(sum(r.get("requests") or 0 for r in rows))
    errors = int(sum(r.get("failures") or 0 for r in rows))
    return requests, errors, max((r["p99_ms"] for r in rows if r.get("p99_ms") is not None), default=None)


def _load_words(load: tuple[int, int, float | None]) -> str:
    requests, errors, p99 = load
    return f"{errors:,} error(s) of {requests:,} requests" + (f", worst one-second p99 {p99:g} ms" if p99 is not None else "")


def _end(ev: dict[str, Any]) -> float | None:
    if ev.get("kind") == "fail_zone":
        return ev.get("replaced_at")
    if ev.get("kind") == "deploy":
        return ev.get("ended_at")
    return None


def _end_words(ev: dict[str, Any]) -> str:
    return "capacity back" if ev.get("kind") == "fail_zone" else f"update done ({ev.get('outcome')})"


def _sum(counts: Any) -> str:
    return str(sum(counts.values())) if isinstance(counts, dict) and counts else "-"


def section(marks: RunMarks) -> str:
    """The HTML of the events' table (the page's other tables' look)."""
    if not marks.verdicts:
        return ""
    cls = {"ok": "pass", "rolled_back": "fail", "failed": "fail", "error": "fail"}
    rows = "".join(
        f"<tr><td class=\"num\">{v.number}</td><td class=\"num\">{v.at_s:.0f}</td><td>{escape(v.what)}</td>"
        f"<td class=\"{cls.get(v.outcome, 'none')}\">{escape(v.verdict)}</td>"
        f"<td>{'<br>'.join(escape(d) for d in v.details)}</td></tr>" for v in marks.verdicts)
    return ("<h2 id=\"run-events\">Events of the run</h2><p class=\"meta\">Each event is marked on the charts' "
            "time axis where it started (and where it ended).</p><table><tr><th>#</th><th>at (s)</th>"
            f"<th>event</th><th>verdict</th><th>what was seen</th></tr>{rows}</table>")
