"""CloudWatch metrics for local endpoints, from the requests that really passed through them.

Per variant, every ``period`` seconds: Invocations, InvocationsPerInstance, Invocation4XXErrors,
Invocation5XXErrors (Sum), ModelLatency and OverheadLatency (microseconds, as distributions: Values
with Counts, so that CloudWatch's percentiles work) in AWS/SageMaker; CPUUtilization and MemoryUtilization
in /aws/sagemaker/Endpoints, one data point per instance per period (CloudWatch's Average is then the
average over instances, its Maximum the busiest), measured on the instance's own processes (``usage``). The front
door's metrics (AWS/ApiGateway, AWS/Lambda) come from ``front_door_metrics``. A serverless variant has no
instances to count or measure: in place of InvocationsPerInstance and the utilisations it publishes the
serverless metrics (``serverless.ServerlessVariant.metric_data``). From an endpoint's first guarded update
on, the invocation metrics are also published per fleet, with the EndpointConfigName dimension
(``guardrails.py``): a request counts on the fleet that served it. Data older than ten
minutes is rolled up to one point per minute, so a long run keeps CloudWatch's store bounded.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sme.local.aws.front_door_metrics import FrontDoorMetrics
from sme.local.aws.metric_data import distribution_data, rounded

HISTORY_S = 600.0  # how far back invocation counts are kept for the scaler
ROLL_UP_AFTER_S = 600.0  # the twin's few-second data points become per-minute ones after this long
ROLL_UP_EVERY_S = 60.0
TWIN_NAMESPACES = ("AWS/SageMaker", "/aws/sagemaker/Endpoints", "AWS/ApiGateway", "AWS/Lambda")


@dataclass
class Window:
    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_us: Counter = field(default_factory=Counter)  # latency (rounded) -> how many requests took it
    overhead_us: Counter = field(default_factory=Counter)


class MetricsPublisher:
    def __init__(self, endpoints: Any, period: float = 5.0):

        self.endpoints = endpoints
        self.period = period
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str, str, str], Window] = defaultdict(Window)
        self.fleet_windows: dict[tuple[str, str, str, str, str], Window] = defaultdict(Window)  # ... + config
        self.history: dict[tuple[str, str, str, str], list[tuple[float, int]]] = defaultdict(list)
        self._procs: dict[int, Any] = {}
        self.last_cpu: dict[tuple[str, str, str, str], float] = {}  # what was last published, per variant
        self.front_door = FrontDoorMetrics()  # fed by execute_api.OBSERVERS while a LocalAws runs
        self._published: set[tuple[str, str]] = set()  # (account, region) of every CloudWatch published to
        self._rolled_up_at = 0.0
        endpoints.observers.append(self.observe)

    def observe(self, ep: Any, variant: str, instance: Any, status: int, model_us: float, overhead_us: float) -> None:
        with self.lock:
            _count(self.windows[(ep.account, ep.region, ep.name, variant)], status, model_us, overhead_us)
            if ep.config_metrics and getattr(instance, "config", ""):
                _count(self.fleet_windows[(ep.account, ep.region, ep.name, variant, instance.config)], status, model_us,
                       overhead_us)

    def flush(self, now: float) -> None:
        with self.lock:
            windows, self.windows = self.windows, defaultdict(Window)
            fleets, self.fleet_windows = self.fleet_windows, defaultdict(Window)
        self._flush_variants(now, windows)
        self._flush_fleets(fleets)
        self._published.update(self.front_door.flush())
        if now - self._rolled_up_at >= ROLL_UP_EVERY_S:
            self._roll_up(now)

    def _flush_fleets(self, windows: dict[tuple[str, str, str, str, str], Window]) -> None:
        """Each fleet's invocation metrics (EndpointConfigName dimension), zeros included while the fleet exists."""
        from moto.cloudwatch.models import cloudwatch_backends

        for ep in self.endpoints.live_endpoints():
            if not ep.config_metrics:
                continue
            for fleet in (ep.live, ep.pending):
                for variant in (fleet.instances if fleet is not None else {}):
                    windows.setdefault((ep.account, ep.region, ep.name, variant, fleet.config), Window())
        for (account, region, name, variant, config), w in windows.items():
            dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant},
                    {"Name": "EndpointConfigName", "Value": config}]
            cloudwatch_backends[account][region].put_metric_data("AWS/SageMaker", _invocation_data(dims, w))

    def _flush_variants(self, now: float, windows: dict[tuple[str, str, str, str], Window]) -> None:
        for ep in self.endpoints.live_endpoints():
            if ep.live is None:
                continue
            for variant, instances in ep.live.instances.items():
                key = (ep.account, ep.region, ep.name, variant)
                w = windows.get(key, Window())
                history = self.history[key]
                history.append((now, w.invocations))
                while history and history[0][0] < now - HISTORY_S:  # the scaler looks back a window only
                    history.pop(0)
                self._publish(ep, variant, instances, w)
                self._published.add((ep.account, ep.region))

    def _roll_up(self, now: float) -> None:
        """Keep CloudWatch's store bounded over a long run: SageMaker publishes per-minute data points, and the
        twin its few-second ones only for quick feedback, so what is older than ROLL_UP_AFTER_S becomes one
        data point per metric and minute (every statistic and percentile of a period of a minute or more
        stays exact). Processes that have exited are forgotten too."""
        from datetime import datetime, timezone

        from moto.cloudwatch.models import cloudwatch_backends

        from sme.local.aws.patches.cloudwatch import roll_up

        self._rolled_up_at = now
        before = datetime.fromtimestamp(now - ROLL_UP_AFTER_S, tz=timezone.utc)
        for account, region in sorted(self._published):
            roll_up(cloudwatch_backends[account][region], TWIN_NAMESPACES, before)
        for pid, proc in list(self._procs.items()):
            if not proc.is_running():
                del self._procs[pid]

    def invocations_since(self, key: tuple[str, str, str, str], since: float) -> int:
        return sum(n for t, n in self.history.get(key, []) if t > since)

    def _publish(self, ep: Any, variant: str, instances: list, w: Window) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        dims = [{"Name": "EndpointName", "Value": ep.name}, {"Name": "VariantName", "Value": variant}]
        count = max(1, len(instances))
        serverless = ep.serverless.get(variant)
        data = _invocation_data(dims, w)
        backend = cloudwatch_backends[ep.account][ep.region]
        if serverless is not None:  # no instances to speak of: the serverless metrics AWS lists instead
            backend.put_metric_data("AWS/SageMaker", data + serverless.metric_data(dims))
            return
        if _is_async(ep):
            # "Any metric not listed below is not published if the endpoint is enabled for asynchronous inference.
            # Such metrics include (but are not limited to): OverheadLatency, Invocations, InvocationsPerInstance"
            # (SageMaker developer guide, "Alarms and logs for tracking metrics from asynchronous endpoints")
            data = [d for d in data if d["MetricName"] not in ("Invocations", "OverheadLatency")]
        else:
            data.append({"MetricName": "InvocationsPerInstance", "Dimensions": dims,
                         "Value": w.invocations / count, "Unit": "None"})
        backend.put_metric_data("AWS/SageMaker", data)
        usage = self._usage(instances)
        if usage:
            self.last_cpu[(ep.account, ep.region, ep.name, variant)] = sum(u[0] for u in usage) / len(usage)
            backend.put_metric_data("/aws/sagemaker/Endpoints", [
                {"MetricName": name, "Dimensions": dims, "Value": u[i], "Unit": "Percent"}
                for u in usage for i, name in enumerate(("CPUUtilization", "MemoryUtilization"))])

    def _usage(self, instances: list) -> list[tuple[float, float]]:
        """(CPU %, memory %) of each instance's process tree since the last call, in SageMaker's terms.

        psutil measures CPU between two calls on the same Process object, so every process (the
        gunicorn master and its workers) is kept in ``_procs`` by pid.
        """
        import psutil

        out = []
        for instance in instances:
            try:
                master = self._process(instance.proc.pid)
                family = [master] + [self._process(c.pid) for c in master.children(recursive=True)]
                busy = sum(p.cpu_percent(None) for p in family)
                resident = sum(_resident_bytes(p) for p in family)
                out.append(usage(busy, resident, getattr(instance, "share", None)))
            except psutil.Error:  # a process that just exited
                continue
        return out

    def _process(self, pid: int) -> Any:
        import psutil

        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self._procs[pid] = psutil.Process(pid)
            proc.cpu_percent(None)  # the first reading only starts the measurement
        return proc


def _count(w: Window, status: int, model_us: float, overhead_us: float) -> None:
    w.invocations += 1
    if 400 <= status < 500:
        w.errors_4xx += 1
    elif status >= 500:
        w.errors_5xx += 1
    w.model_us[rounded(model_us)] += 1
    w.overhead_us[rounded(max(0.0, overhead_us))] += 1


def _invocation_data(dims: list[dict[str, str]], w: Window) -> list[dict[str, Any]]:
    """The invocation metrics of one window (counts as sums, latencies as distributions)."""
    return [
        {"MetricName": "Invocations", "Dimensions": dims, "Value": float(w.invocations), "Unit": "None"},
        {"MetricName": "Invocation4XXErrors", "Dimensions": dims, "Value": float(w.errors_4xx), "Unit": "None"},
        {"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Value": float(w.errors_5xx), "Unit": "None"},
        *distribution_data("ModelLatency", dims, w.model_us),
        *distribution_data("OverheadLatency", dims, w.overhead_us),
    ]


def _is_async(ep: Any) -> bool:
    from sme.local.aws.async_queue import _async_config

    return bool(_async_config(ep.account, ep.region, ep.name))


def usage(busy_pct: float, resident_bytes: int, share: Any) -> tuple[float, float]:
    """(CPUUtilization, MemoryUtilization) of one instance, as SageMaker defines them, from what its processes used.

    SageMaker's CPUUtilization is summed over the instance's vCPUs (an ml.c5.large, 2 vCPUs, reads 0-200%);
    its MemoryUtilization is the containers' memory over the instance's. A local instance of a known type runs
    on ``len(share.cores)`` of this machine's CPUs (``sme.instance_types.local_share``): the fraction of them
    its processes kept busy is the fraction of its vCPUs, so 100% of its one core reads 200% for an
    ml.c5.large, as a saturated ml.c5.large does on AWS. Memory is the processes' proportional set size (forked
    workers share pages: their RSS would count those twice) over the type's memory. An instance of a type
    sme does not know is measured against this machine: CPU per CPU, memory over the machine's.
    """
    from sme.instance_types import known

    itype = known(share.instance_type) if share is not None else None
    if itype is None or not share.cores:
        import psutil

        return busy_pct, 100.0 * resident_bytes / psutil.virtual_memory().total
    return busy_pct / len(share.cores) * itype.vcpus, 100.0 * resident_bytes / (itype.memory_gib * 2 ** 30)


def _resident_bytes(proc: Any) -> int:
    import psutil

    try:
        return int(proc.memory_full_info().pss)
    except (psutil.AccessDenied, AttributeError):  # no /proc/PID/smaps to read: RSS, an upper bound
        return int(proc.memory_info().rss)
