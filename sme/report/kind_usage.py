"""What a run used, in each endpoint kind's own price dimensions. Pure functions of a ``Run``.

- Serverless: the variant's memory (from the load test's ``serverless`` section, else the watch's
  ``variants[].serverless``); its inference seconds from CloudWatch (each sample's ModelLatency average x its
  Invocations: what SageMaker measured and bills per millisecond), else from the load's own latencies (mean x
  requests the endpoint took in: an upper bound, as it holds the network and SageMaker's overhead too); the
  bytes sent and received from the load test's ``bytes``; provisioned concurrency for as long as the watch
  (else the run) lasted, and the share of inference it served from
  ``ServerlessProvisionedConcurrencyInvocations``.
- Asynchronous: instance-minutes from the watch's instance counts, with the minutes at zero instances apart
  (they cost nothing).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sme.report.kind_cost import ServerlessUsage
from sme.report.rundir import Run
from sme.report.summary import instance_minutes

PC_INVOCATIONS = "ServerlessProvisionedConcurrencyInvocations"


@dataclass(frozen=True)
class ServerlessSetup:
    variant: str
    memory_mb: int
    max_concurrency: int | None
    provisioned_concurrency: int
    source: str  # where the settings were read


@dataclass(frozen=True)
class MeasuredServerless:
    usage: ServerlessUsage
    compute_from: str
    data_measured: bool  # False: the run has no byte counts, so data processed is unknown
    inferences: float  # the inferences those seconds and bytes were spent on

    @property
    def seconds_per_inference(self) -> float | None:
        u = self.usage
        return (u.inference_seconds + u.provisioned_inference_seconds) / self.inferences if self.inferences else None


def endpoint_kind(run: Run) -> str:
    """``serverless``, ``async`` or ``instances`` (real-time on instances)."""
    if serverless_setup(run) is not None:
        return "serverless"
    if (run.summary or {}).get("async") or any(r.get("async_queue") for r in run.samples):
        return "async"
    return "instances"


def serverless_setup(run: Run) -> ServerlessSetup | None:
    section = (run.summary or {}).get("serverless")
    if isinstance(section, dict) and isinstance(section.get("memory_mb"), int):
        return ServerlessSetup(str(section.get("variant") or ""), section["memory_mb"],
                               section.get("max_concurrency"), int(section.get("provisioned_concurrency") or 0),
                               "summary.json serverless")
    for rec in run.samples:
        for v in rec.get("variants") or []:
            config = v.get("serverless")
            if isinstance(config, dict) and isinstance(config.get("memory_mb"), int):
                return ServerlessSetup(str(v.get("name") or ""), config["memory_mb"], config.get("max_concurrency"),
                                       int(config.get("provisioned_concurrency") or 0), "the watch file")
    return None


def serverless_usage(run: Run, setup: ServerlessSetup) -> MeasuredServerless:
    seconds, pc_seconds, count, compute_from = _inference_seconds(run, setup.variant)
    sent, received, measured = _bytes(run)
    if run.samples:
        _, kept = instance_minutes(run.samples)
    else:
        kept = float((run.summary or {}).get("duration_s") or 0.0)
    if not setup.provisioned_concurrency:
        pc_seconds, kept = 0.0, 0.0
    usage = ServerlessUsage(setup.memory_mb, seconds - pc_seconds, sent, received, setup.provisioned_concurrency,
                            kept, pc_seconds)
    return MeasuredServerless(usage, compute_from, measured, count)


def _inference_seconds(run: Run, variant: str) -> tuple[float, float, float, str]:
    """(all inference seconds, those served by provisioned concurrency, inferences, where they came from)."""
    total = pc = inferences = 0.0
    seen = False
    for rec in run.samples:
        metrics = (rec.get("metrics") or {}).get(variant) or {}
        latency_us, count = metrics.get("ModelLatency"), metrics.get("Invocations")
        if isinstance(latency_us, (int, float)) and isinstance(count, (int, float)):
            seen = True
            total += latency_us / 1e6 * count
            inferences += count
            pc_count = metrics.get(PC_INVOCATIONS)
            if isinstance(pc_count, (int, float)):
                pc += latency_us / 1e6 * min(pc_count, count)
    if seen:
        return total, pc, inferences, "CloudWatch ModelLatency x Invocations (the watch file)"
    s = run.summary or {}
    mean = (s.get("latency_ms") or {}).get("mean")
    if isinstance(mean, (int, float)) and isinstance(s.get("requests"), int):
        taken = s["requests"] - _not_taken_in(s)
        return mean / 1000.0 * taken, 0.0, float(taken), (
            f"the load's mean latency x {taken:,} requests taken in (an upper bound: it holds the network and "
            "SageMaker's overhead; a watch file gives ModelLatency)")
    return 0.0, 0.0, 0.0, "nothing measured (no watch file with ModelLatency, no load-test summary)"


def _not_taken_in(summary: dict[str, Any]) -> int:
    """Throttled requests and those that got no reply: the endpoint ran no inference for them."""
    errors = [e for e in summary.get("errors") or [] if isinstance(e, dict)]
    return sum(int(e.get("count") or 0) for e in errors
               if e.get("error_code") == "ThrottlingException" or e.get("kind") == "exception")


def _bytes(run: Run) -> tuple[int, int, bool]:
    counted = (run.summary or {}).get("bytes")
    if isinstance(counted, dict) and isinstance(counted.get("sent"), int) and isinstance(counted.get("received"), int):
        return counted["sent"], counted["received"], True
    return 0, 0, False


@dataclass(frozen=True)
class ZeroSpans:
    """An asynchronous endpoint's instance-minutes, and the minutes it spent at zero instances."""

    instance_minutes: dict[str, float]
    minutes_at_zero: dict[str, float]


def async_spans(samples: list[dict[str, Any]]) -> ZeroSpans:
    """Per variant: (minutes x instances) summed, and the minutes a sample saw zero instances (each sample's
    count holds until the next, the last one for its interval: ``summary.instance_minutes``' rule)."""
    minutes, _ = instance_minutes(samples)
    at_zero: dict[str, float] = {}
    for i, rec in enumerate(samples):
        held = _held(samples, i)
        for v in rec.get("variants") or []:
            if v.get("current_instances") == 0:
                at_zero[v["name"]] = at_zero.get(v["name"], 0.0) + held / 60.0
    return ZeroSpans(minutes, at_zero)


def _held(samples: list[dict[str, Any]], i: int) -> float:
    if i + 1 < len(samples):
        return float(samples[i + 1]["time"]) - float(samples[i]["time"])
    last = samples[i].get("interval")
    if isinstance(last, (int, float)) and last > 0:
        return float(last)
    spacing = [float(b["time"]) - float(a["time"]) for a, b in zip(samples, samples[1:]) if b["time"] > a["time"]]
    return statistics.median(spacing) if spacing else 60.0
