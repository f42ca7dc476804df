"""CloudWatch metrics for local endpoints, from the requests that really passed through them.

Per variant, every ``period`` seconds: Invocations, InvocationsPerInstance, Invocation4XXErrors,
Invocation5XXErrors (Sum), ModelLatency and OverheadLatency (microseconds, as distributions: Values
with Counts, so that CloudWatch's percentiles work) in AWS/SageMaker; CPUUtilization and MemoryUtilization of the instances' processes (percent, summed over
an instance's cores as SageMaker does, averaged over instances) in /aws/sagemaker/Endpoints. The front
door's metrics (AWS/ApiGateway, AWS/Lambda) come from ``front_door_metrics``. Data older than ten
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
        self.history: dict[tuple[str, str, str, str], list[tuple[float, int]]] = defaultdict(list)
        self._procs: dict[int, Any] = {}
        self.last_cpu: dict[tuple[str, str, str, str], float] = {}  # what was last published, per variant
        self.front_door = FrontDoorMetrics()  # fed by execute_api.OBSERVERS while a LocalAws runs
        self._published: set[tuple[str, str]] = set()  # (account, region) of every CloudWatch published to
        self._rolled_up_at = 0.0
        endpoints.observers.append(self.observe)

    def observe(self, ep: Any, variant: str, instance: Any, status: int, model_us: float, overhead_us: float) -> None:
        with self.lock:
            w = self.windows[(ep.account, ep.region, ep.name, variant)]
            w.invocations += 1
            if 400 <= status < 500:
                w.errors_4xx += 1
            elif status >= 500:
                w.errors_5xx += 1
            w.model_us[rounded(model_us)] += 1
            w.overhead_us[rounded(max(0.0, overhead_us))] += 1

    def flush(self, now: float) -> None:
        with self.lock:
            windows, self.windows = self.windows, defaultdict(Window)
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
        self._published.update(self.front_door.flush())
        if now - self._rolled_up_at >= ROLL_UP_EVERY_S:
            self._roll_up(now)

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
        data = [
            {"MetricName": "Invocations", "Dimensions": dims, "Value": float(w.invocations), "Unit": "None"},
            {"MetricName": "InvocationsPerInstance", "Dimensions": dims, "Value": w.invocations / count, "Unit": "None"},
            {"MetricName": "Invocation4XXErrors", "Dimensions": dims, "Value": float(w.errors_4xx), "Unit": "None"},
            {"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Value": float(w.errors_5xx), "Unit": "None"},
        ]
        data += distribution_data("ModelLatency", dims, w.model_us)
        data += distribution_data("OverheadLatency", dims, w.overhead_us)
        backend = cloudwatch_backends[ep.account][ep.region]
        backend.put_metric_data("AWS/SageMaker", data)
        usage = self._usage(instances)
        if usage:
            cpu = sum(u[0] for u in usage) / len(usage)
            mem = sum(u[1] for u in usage) / len(usage)
            self.last_cpu[(ep.account, ep.region, ep.name, variant)] = cpu
            backend.put_metric_data("/aws/sagemaker/Endpoints", [
                {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": cpu, "Unit": "Percent"},
                {"MetricName": "MemoryUtilization", "Dimensions": dims, "Value": mem, "Unit": "Percent"},
            ])

    def _usage(self, instances: list) -> list[tuple[float, float]]:
        """(CPU %, memory %) of each instance's process tree since the last call.

        psutil measures CPU between two calls on the same Process object, so every process (the
        gunicorn master and its workers) is kept in ``_procs`` by pid.
        """
        import psutil

        out = []
        for instance in instances:
            try:
                master = self._process(instance.proc.pid)
                family = [master] + [self._process(c.pid) for c in master.children(recursive=True)]
                cpu = sum(p.cpu_percent(None) for p in family)
                mem = sum(p.memory_percent() for p in family)
                out.append((cpu, mem))
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
