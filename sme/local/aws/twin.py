"""The local AWS: a moto server extended by sme, whose SageMaker endpoints are real model runtimes.

``LocalAws().start()`` serves on 127.0.0.1 (the data plane on a fast asynchronous front, the control plane
on moto: ``server.py``) and runs a control loop that publishes CloudWatch metrics, applies
target-tracking policies and moves guarded updates through their traffic shifts (``guardrails.py``). Every sme command works against it unchanged through
``AWS_ENDPOINT_URL``. Used by `sme local start` (foreground) and `sme demo` (in process).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sme.local.aws.async_queue import AsyncQueues
from sme.local.aws.fleet import Launcher
from sme.local.aws.endpoints import LocalEndpoints
from sme.local.aws.metrics import MetricsPublisher
from sme.local.aws.scaler import Scaler
from sme.local.aws.server import MotoServer

ACCOUNT = "123456789012"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class LocalAws:
    def __init__(self, port: int = 0, workdir: Path | None = None, metrics_period: float = 5.0,
                 scaling_period: float = 5.0, scaling_window: float = 30.0):
        self.server = MotoServer(port=port)
        self.endpoints = LocalEndpoints(Launcher(workdir))
        self.endpoints.alarm_period = metrics_period
        self.metrics = MetricsPublisher(self.endpoints, metrics_period)
        self.async_queues = AsyncQueues(self.endpoints)
        self.scaler = Scaler(self.endpoints, self.metrics, window=scaling_window, queues=self.async_queues,
                             metrics_period=metrics_period)
        self.metrics_period, self.scaling_period = metrics_period, scaling_period
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    def start(self) -> "LocalAws":
        from sme.local.aws import async_queue, execute_api
        from sme.local.aws.patches import sagemaker_runtime
        from sme.local.aws.patches.sagemaker import LIFECYCLE

        self.server.start()
        LIFECYCLE.hooks = self.endpoints
        sagemaker_runtime.forward_to_runtimes(self.endpoints)
        async_queue.serve(self.async_queues)
        execute_api.OBSERVERS.append(self.metrics.front_door.observe)
        self._loop = threading.Thread(target=self._run, name="sme-local-control", daemon=True)
        self._loop.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def environment(self, region: str = "us-east-1") -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.url, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                **LOCAL_CREDENTIALS}

    def _run(self) -> None:
        next_metrics = next_scaling = time.time()
        while not self._stop.wait(0.5):
            now = time.time()
            try:
                self.endpoints.promote(_endpoint_object)
                self.endpoints.reap_idle()
                if now >= next_metrics:
                    self.metrics.flush(now)
                    self.async_queues.flush(now)
                    next_metrics += self.metrics_period
                self.endpoints.advance_updates()  # after the flush: a baking period's alarms see its newest data
                if now >= next_scaling:
                    self.scaler.evaluate()
                    next_scaling += self.scaling_period
            except Exception as exc:  # noqa: BLE001 - the control loop must survive one bad tick
                print(f"sme local: control loop: {type(exc).__name__}: {exc}", flush=True)

    def stop(self) -> None:
        """Undo everything ``start`` did, every step even when one fails (the first failure is raised after
        the rest): a twin half stopped would keep forwarding InvokeEndpoint to runtimes that are gone, or
        keep serving on its port."""
        from sme.local.aws import async_queue, execute_api, zones
        from sme.local.aws.patches import sagemaker_runtime
        from sme.local.aws.patches.sagemaker import LIFECYCLE

        def unobserve() -> None:
            if self.metrics.front_door.observe in execute_api.OBSERVERS:
                execute_api.OBSERVERS.remove(self.metrics.front_door.observe)

        def end_loop() -> None:
            self._stop.set()
            if self._loop:
                self._loop.join(timeout=5)

        def unhook() -> None:
            LIFECYCLE.hooks = None

        failure: BaseException | None = None
        for step in (zones.forget_failures, lambda: async_queue.stop_serving(self.async_queues), unobserve,
                     end_loop, self.endpoints.stop_all, unhook,
                     lambda: sagemaker_runtime.stop_forwarding(self.endpoints), self.server.stop):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - raised once every other step has run
                failure = failure or exc
        if failure is not None:
            raise failure


def _endpoint_object(ep: Any) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ep.account][ep.region].endpoints.get(ep.name)
