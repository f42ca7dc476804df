"""Serverless variants in the twin: runtimes started by requests, one request at a time each, as AWS runs them.

AWS behaviour reproduced (Serverless Inference developer guide; its CloudWatch metrics page is the list
of what is published; the error's shape is what SageMaker Runtime answers, see below):

- a serverless variant runs no runtime until a request needs one: the endpoint is InService with none
  (provisioned concurrency aside), and a request that finds no idle runtime starts one and waits for it.
  That wait is the runtime's real start-up (process, model load, first /ping), published as
  ``ModelSetupTime`` (microseconds) and part of the request's ``OverheadLatency``, as AWS counts it;
- each runtime serves one request at a time; a runtime idle for longer than the idle timeout is stopped,
  so the next request pays a start-up again. AWS does not document how long it keeps one warm: the twin
  keeps it ``SME_SERVERLESS_IDLE_S`` seconds (default 300; tests set it low);
- at most ``MaxConcurrency`` requests run at once (starting runtimes included); one more is refused at once
  with HTTP 400 ``ThrottlingException`` and a null message, which botocore reports as "An error occurred
  (ThrottlingException) when calling the InvokeEndpoint operation: None". Sources: SageMaker's common
  errors (ThrottlingException, 400), opensearch-project/ml-commons#2429 (the body is ``{"message": null}``),
  aws/amazon-kinesis-video-streams-parser-library#187 ("Status Code: 400; Error Code: ThrottlingException")
  and aws-samples/amazon-sagemaker-nlu-search#4 (botocore's "...InvokeEndpoint operation ...: None").
  A throttled request never reaches a model: it is not an ``Invocations`` (nor an error) of the variant;
- ``ProvisionedConcurrency`` runtimes start with the endpoint (it is InService once they answer /ping)
  and are never stopped for idleness; a request takes one of them first. Published per variant:
  ``ServerlessConcurrentExecutionsUtilization`` (concurrent executions / MaxConcurrency), and with
  provisioned concurrency ``ServerlessProvisionedConcurrencyExecutions``, ``...Utilization`` (executions on
  provisioned runtimes / ProvisionedConcurrency), ``...Invocations`` and ``...SpilloverInvocations``.
  Concurrency statistics are time-weighted over the period (Average) with its Minimum and Maximum.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from sme.local.aws.metric_data import distribution_data, rounded

IDLE_ENV = "SME_SERVERLESS_IDLE_S"
DEFAULT_IDLE_S = 300.0
START_TIMEOUT_S = 180.0  # the twin's bound on one runtime's start-up (a model that never loads)
READY_POLL_S = 0.02


class Throttled(Exception):
    """More requests than MaxConcurrency at once."""


@dataclass
class Runtime:
    instance: Any  # fleet.Instance
    provisioned: bool
    idle_since: float = field(default_factory=time.monotonic)


@dataclass
class Concurrency:
    """A count over time: its time-weighted average, minimum and maximum since the last ``take``."""

    now: int = 0
    area: float = 0.0
    low: int = 0
    high: int = 0
    since: float = field(default_factory=time.monotonic)
    changed: float = field(default_factory=time.monotonic)

    def add(self, delta: int, at: float) -> None:
        self.area += self.now * (at - self.changed)
        self.now += delta
        self.changed = at
        self.low, self.high = min(self.low, self.now), max(self.high, self.now)

    def take(self, at: float) -> tuple[float, int, int]:
        """(average, minimum, maximum) over the window ending now; a new window starts."""
        self.add(0, at)
        average = self.area / (at - self.since) if at > self.since else float(self.now)
        out = (average, self.low, self.high)
        self.area, self.since, self.low, self.high = 0.0, at, self.now, self.now
        return out


class ServerlessVariant:
    """The runtimes of one serverless variant; ``acquire``/``release`` run on the front's event loop, ``reap``
    and ``metric_data`` on the control loop's thread (hence the lock around the counts)."""

    def __init__(self, config: dict, group: list, launch: Callable[[], Any], stop: Callable[[list], None],
                 idle_s: float | None = None):
        self.max_concurrency = int(config["MaxConcurrency"])
        self.provisioned = int(config.get("ProvisionedConcurrency") or 0)
        self.memory_mb = int(config["MemorySizeInMB"])
        self.group = group  # the live fleet's list of this variant's instances, kept in step (stops, metrics)
        self.launch, self.stop = launch, stop
        self.idle_s = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)) if idle_s is None else idle_s
        self.idle = [Runtime(i, provisioned=True) for i in group]
        self.lock = threading.Lock()
        self.executions, self.on_provisioned = Concurrency(), Concurrency()
        self.setup_us: Counter = Counter()
        self.provisioned_invocations = self.spillover_invocations = self.throttles = 0

    async def acquire(self) -> tuple[Runtime, float | None]:
        """A runtime for one request, and the seconds its start-up took (None: it was warm)."""
        loop = asyncio.get_running_loop()
        expired = self._expired(time.monotonic())
        if expired:
            loop.run_in_executor(None, self.stop, expired)
        with self.lock:
            now = time.monotonic()
            if self.idle:
                runtime = self._take_idle()
                self.executions.add(1, now)
                if runtime.provisioned:
                    self.on_provisioned.add(1, now)
                    self.provisioned_invocations += 1
                else:
                    self.spillover_invocations += self.provisioned > 0
                return runtime, None
            if self.executions.now >= self.max_concurrency:
                self.throttles += 1
                raise Throttled()
            self.executions.add(1, now)  # a starting runtime is already one of the concurrent executions
            self.spillover_invocations += self.provisioned > 0
        try:
            runtime, setup_s = await self._cold_start(loop)
        except BaseException:
            with self.lock:
                self.executions.add(-1, time.monotonic())
            raise
        with self.lock:
            self.setup_us[rounded(setup_s * 1e6)] += 1
        return runtime, setup_s

    def _take_idle(self) -> Runtime:
        """A provisioned runtime first (AWS serves from provisioned concurrency before spilling over),
        otherwise the most recently used one, so that the others can go idle for good."""
        for k in range(len(self.idle) - 1, -1, -1):
            if self.idle[k].provisioned:
                return self.idle.pop(k)
        return self.idle.pop()

    async def _cold_start(self, loop: asyncio.AbstractEventLoop) -> tuple[Runtime, float]:
        started = time.perf_counter()
        instance = await loop.run_in_executor(None, self.launch)
        deadline = started + START_TIMEOUT_S
        while True:
            state, reason = await loop.run_in_executor(None, instance.state)
            if state == "ready":
                break
            if state == "failed" or time.perf_counter() > deadline:
                loop.run_in_executor(None, self.stop, [instance])
                raise RuntimeError(reason or f"the model server did not start within {START_TIMEOUT_S:g} s")
            await asyncio.sleep(READY_POLL_S)
        with self.lock:
            self.group.append(instance)
        return Runtime(instance, provisioned=False), time.perf_counter() - started

    def release(self, runtime: Runtime) -> None:
        with self.lock:
            now = time.monotonic()
            self.executions.add(-1, now)
            if runtime.provisioned:
                self.on_provisioned.add(-1, now)
            runtime.idle_since = now
            self.idle.append(runtime)

    def reap(self, now: float | None = None) -> None:
        """Stop the runtimes idle for longer than the idle timeout (the control loop calls this)."""
        expired = self._expired(time.monotonic() if now is None else now)
        if expired:
            self.stop(expired)

    def _expired(self, now: float) -> list:
        with self.lock:
            gone = [r for r in self.idle if not r.provisioned and now - r.idle_since > self.idle_s]
            if not gone:
                return []
            self.idle = [r for r in self.idle if r not in gone]
            for runtime in gone:
                if runtime.instance in self.group:
                    self.group.remove(runtime.instance)
        return [r.instance for r in gone]

    def metric_data(self, dims: list, now: float | None = None) -> list[dict]:
        """This period's serverless metrics (PutMetricData entries, AWS/SageMaker); a new period starts."""
        at = time.monotonic() if now is None else now
        with self.lock:
            setup, self.setup_us = self.setup_us, Counter()
            executions = self.executions.take(at)
            provisioned = self.on_provisioned.take(at)
            pc_invocations, spillover = self.provisioned_invocations, self.spillover_invocations
            self.provisioned_invocations = self.spillover_invocations = 0
        data = distribution_data("ModelSetupTime", dims, setup) if setup else []
        data.append(_spread("ServerlessConcurrentExecutionsUtilization", dims, executions, self.max_concurrency))
        if self.provisioned:
            data += [_spread("ServerlessProvisionedConcurrencyExecutions", dims, provisioned, 1, "Count"),
                     _spread("ServerlessProvisionedConcurrencyUtilization", dims, provisioned, self.provisioned),
                     {"MetricName": "ServerlessProvisionedConcurrencyInvocations", "Dimensions": dims,
                      "Value": float(pc_invocations), "Unit": "Count"},
                     {"MetricName": "ServerlessProvisionedConcurrencySpilloverInvocations", "Dimensions": dims,
                      "Value": float(spillover), "Unit": "Count"}]
        return data


def _spread(name: str, dims: list, window: tuple[float, int, int], divisor: int, unit: str = "None") -> dict:
    """One period's time-weighted level as a statistic set: Average is the mean level, Minimum and Maximum
    the lowest and highest it reached."""
    average, low, high = window
    return {"MetricName": name, "Dimensions": dims, "Unit": unit,
            "StatisticValues": {"SampleCount": 1.0, "Sum": average / divisor, "Minimum": low / divisor,
                                "Maximum": high / divisor}}


def serverless_config(variant: dict) -> dict | None:
    """A production variant's ServerlessConfig (as CreateEndpointConfig took it), or None."""
    config = variant.get("ServerlessConfig")
    return dict(config) if config else None
