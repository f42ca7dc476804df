"""SageMaker Asynchronous Inference in the twin: InvokeEndpointAsync, a queue per endpoint, results in S3.

AWS behaviour reproduced (the InvokeEndpointAsync API reference, botocore's sagemaker-runtime service model,
"Asynchronous inference" in the SageMaker developer guide):

- ``POST /endpoints/{name}/async-invocations`` answers 202 with ``X-Amzn-SageMaker-OutputLocation`` and
  ``X-Amzn-SageMaker-FailureLocation`` headers and ``{"InferenceId": ...}`` in the body (plus both locations);
  the InferenceId is the caller's ``X-Amzn-SageMaker-Inference-Id`` or a fresh UUID;
- the request's payload is the S3 object named by ``X-Amzn-SageMaker-InputLocation``; a missing header, an
  object that does not exist, an unknown endpoint or one without ``AsyncInferenceConfig`` answer 400
  ``ValidationError``;
- the request waits in the endpoint's queue; each instance takes at most
  ``ClientConfig.MaxConcurrentInvocationsPerInstance`` at a time (AWS's default when unset: 1 here, the
  documented default being chosen by SageMaker per container);
- the model's reply is written to ``S3OutputPath/<InferenceId>.out``; a model error (or no reply within
  ``X-Amzn-SageMaker-InvocationTimeoutSeconds``, 900 s by default) to ``S3FailurePath/<InferenceId>-error.out``
  (to the output path when no failure path is set);
- while the queue holds requests and the endpoint has no instance (scaled to zero), the requests wait: the
  scaler wakes the endpoint through the HasBacklogWithoutCapacity policy;
- per endpoint (dimension EndpointName, namespace AWS/SageMaker) every metrics period:
  ApproximateBacklogSize (queued plus being processed), ApproximateBacklogSizePerInstance (divided by the
  instances, or the backlog itself at zero instances), HasBacklogWithoutCapacity (1 when there is a backlog
  and no instance) and ApproximateAgeOfOldestRequest (seconds the oldest queued request has waited);
  every processed request also counts in the variant's usual invocation metrics (``endpoints.observe``).

- with a NotificationConfig, each result is announced on the success or error topic in the twin's SNS, and
  the per-request metrics TimeInBacklog, TotalProcessingTime and InvocationsProcesssed are published
  (``async_notify``, which names the AWS behaviour).

Not reproduced: RequestTTLSeconds expiry, S3OutputPathExtension and Filename, KMS.

The front (``front.py``) answers the call on its event loop (``answer``); the queue's pumps and the model calls
run on that loop too. The control loop calls ``flush`` from its own thread: it only reads lengths and times.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sme.local.aws import async_notify
from sme.local.aws.patches import sagemaker_runtime

ROUTE = re.compile(r"^/endpoints/([^/]+)/async-invocations$")
DEFAULT_INVOCATION_TIMEOUT_S = 900.0
DEFAULT_PER_INSTANCE = 1
IDLE_RECHECK_S = 0.1  # how often a pump with work and no free instance looks again (scale-out, promotion)
_QUEUES: "AsyncQueues | None" = None


@dataclass
class Job:
    inference_id: str
    body: bytes
    content_type: str
    accept: str
    output: str  # s3:// URI of the output object
    failure: str
    timeout_s: float
    input_location: str = ""
    arrived: float = field(default_factory=time.time)


@dataclass
class Backlog:
    """One endpoint's queue: what waits, what is being processed (per instance port), and a wake-up."""

    account: str
    region: str
    name: str
    waiting: collections.deque = field(default_factory=collections.deque)
    busy: dict[int, int] = field(default_factory=dict)  # instance port -> requests it is processing
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: Any = None

    @property
    def size(self) -> int:
        # the control loop reads this while the front's loop changes ``busy``: a copy is one atomic step
        return len(self.waiting) + sum(self.busy.copy().values())


def serve(queues: "AsyncQueues") -> None:
    """InvokeEndpointAsync goes to these queues while a ``LocalAws`` runs."""
    global _QUEUES
    _QUEUES = queues


def stop_serving(queues: "AsyncQueues") -> None:
    global _QUEUES
    if _QUEUES is queues:
        _QUEUES = None


def is_async_invocation(method: str, path: str) -> bool:
    return _QUEUES is not None and method == "POST" and ROUTE.match(path) is not None


async def answer(path: str, headers: Any, read_body: Any, post: Any) -> sagemaker_runtime.Reply:
    queues = _QUEUES
    scope = sagemaker_runtime._SCOPE.search(headers.get("Authorization", ""))
    if scope is None or queues is None:
        return sagemaker_runtime._error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    await read_body()  # InvokeEndpointAsync's payload is the input object; a body is read and ignored
    account, region = sagemaker_runtime._account(scope.group(1)), scope.group(2)
    name = ROUTE.match(path).group(1)  # type: ignore[union-attr]
    return queues.submit(account, region, name, headers, post)


def _validation(message: str) -> sagemaker_runtime.Reply:
    return sagemaker_runtime._error(400, "ValidationError", message)


class AsyncQueues:
    def __init__(self, endpoints: Any):
        self.endpoints = endpoints
        self.backlogs: dict[tuple[str, str, str], Backlog] = {}
        self.request_metrics = async_notify.AsyncRequestMetrics()

    # -- the call (on the front's event loop) ----------------------------------------------------------
    def submit(self, account: str, region: str, name: str, headers: Any, post: Any) -> sagemaker_runtime.Reply:
        config = _async_config(account, region, name)
        if config is None:
            return _validation(f"Endpoint {name} of account {account} not found.")
        if not config:
            return _validation(f"Endpoint {name} is not an asynchronous inference endpoint; "
                               "use InvokeEndpoint (InvokeEndpointAsync needs an AsyncInferenceConfig).")
        location = headers.get("X-Amzn-SageMaker-InputLocation", "")
        if not location:
            return _validation("1 validation error detected: Value null at 'inputLocation' failed to satisfy "
                               "constraint: Member must not be null")
        body = _read_s3(account, location)
        if body is None:
            return _validation(f"Could not access the input object at {location}: it does not exist.")
        inference_id = headers.get("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        output_cfg = config.get("OutputConfig") or {}
        output = _join(output_cfg["S3OutputPath"], f"{inference_id}.out")
        failure = _join(output_cfg.get("S3FailurePath") or output_cfg["S3OutputPath"], f"{inference_id}-error.out")
        job = Job(inference_id, body, headers.get("X-Amzn-SageMaker-Content-Type", ""),
                  headers.get("X-Amzn-SageMaker-Accept", ""), output, failure,
                  float(headers.get("X-Amzn-SageMaker-InvocationTimeoutSeconds") or DEFAULT_INVOCATION_TIMEOUT_S),
                  location)
        backlog = self._backlog(account, region, name)
        backlog.waiting.append(job)
        backlog.wake.set()
        if backlog.pump is None or backlog.pump.done():
            backlog.pump = asyncio.get_running_loop().create_task(self._pump(backlog, config, post))
        reply = {"InferenceId": inference_id, "OutputLocation": output, "FailureLocation": failure}
        return 202, [("Content-Type", "application/json"), ("X-Amzn-SageMaker-OutputLocation", output),
                     ("X-Amzn-SageMaker-FailureLocation", failure)], json.dumps(reply).encode()

    def _backlog(self, account: str, region: str, name: str) -> Backlog:
        key = (account, region, name)
        backlog = self.backlogs.get(key)
        if backlog is None:
            backlog = self.backlogs[key] = Backlog(account, region, name)
        return backlog

    # -- the queue (on the front's event loop) ---------------------------------------------------------
    async def _pump(self, backlog: Backlog, config: dict, post: Any) -> None:
        """Hand waiting requests to instances with a free slot, until the queue is empty."""
        per_instance = int((config.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance")
                           or DEFAULT_PER_INSTANCE)
        while backlog.waiting:
            ep = self.endpoints._get_key(backlog.account, backlog.region, backlog.name)
            if ep is None:  # deleted: its queue goes with it, as in AWS
                backlog.waiting.clear()
                return
            free = _free_instance(ep, backlog, per_instance)
            if free is None:
                backlog.wake.clear()
                try:
                    await asyncio.wait_for(backlog.wake.wait(), IDLE_RECHECK_S)
                except asyncio.TimeoutError:
                    pass
                continue
            variant, instance = free
            job = backlog.waiting.popleft()
            backlog.busy[instance.port] = backlog.busy.get(instance.port, 0) + 1
            asyncio.get_running_loop().create_task(self._process(ep, backlog, variant, instance, job, post, config))

    async def _process(self, ep: Any, backlog: Backlog, variant: str, instance: Any, job: Job, post: Any,
                       config: dict) -> None:
        began = time.time()
        started = time.perf_counter()
        try:
            status, data, content_type = await post(instance.port, job.body, job.content_type, job.accept,
                                                    job.timeout_s)
        except (OSError, TimeoutError):
            status, data, content_type = 0, (b"Your invocation timed out while waiting for a response from "
                                             b"container primary."), ""
        model_s = time.perf_counter() - started
        try:
            written = _deliver(backlog.account, job, status, data, content_type)
            notified = _notify(backlog, config, job, status if written else 500, data, content_type)
            self.request_metrics.count(backlog.account, backlog.region, backlog.name, variant, began - job.arrived,
                                       time.time() - job.arrived, not notified)
        finally:
            backlog.busy[instance.port] -= 1
            if not backlog.busy[instance.port]:
                del backlog.busy[instance.port]
            backlog.wake.set()
        queued_us = max(0.0, (time.time() - job.arrived) * 1e6 - model_s * 1e6)
        self.endpoints.observe(ep, variant, instance, status if status else 500, model_s * 1e6, queued_us)

    # -- metrics (the control loop's thread) -----------------------------------------------------------
    def flush(self, now: float) -> None:
        """Every asynchronous endpoint's backlog metrics, an idle one's too (zeros: what lets a backlog policy
        scale it in, and to zero)."""
        from moto.cloudwatch.models import cloudwatch_backends

        for key in [k for k in self.backlogs if self.endpoints._get_key(*k) is None]:
            self.backlogs.pop(key, None)
        for ep in self.endpoints.live_endpoints():
            if ep.live is None or not _async_config(ep.account, ep.region, ep.name):
                continue
            backlog = self.backlogs.get((ep.account, ep.region, ep.name))
            size, oldest = (backlog.size, _oldest(backlog, now)) if backlog else (0, 0.0)
            data = backlog_metrics(ep.name, size, len(ep.live.all()), oldest)
            cloudwatch_backends[ep.account][ep.region].put_metric_data("AWS/SageMaker", data)
        self.request_metrics.flush()

    def backlog_of(self, account: str, region: str, name: str) -> int:
        backlog = self.backlogs.get((account, region, name))
        return backlog.size if backlog else 0

    def busy_ports(self, account: str, region: str, name: str) -> frozenset[int]:
        """The ports of the endpoint's instances that are processing a request (not to be retired now)."""
        backlog = self.backlogs.get((account, region, name))
        return frozenset(backlog.busy.copy()) if backlog else frozenset()  # copy: the front's loop changes it


def backlog_metrics(name: str, size: int, instances: int, oldest_s: float) -> list[dict[str, Any]]:
    dims = [{"Name": "EndpointName", "Value": name}]
    per_instance = size / instances if instances else float(size)
    return [
        {"MetricName": "ApproximateBacklogSize", "Dimensions": dims, "Value": float(size), "Unit": "Count"},
        {"MetricName": "ApproximateBacklogSizePerInstance", "Dimensions": dims, "Value": per_instance,
         "Unit": "Count"},
        {"MetricName": "HasBacklogWithoutCapacity", "Dimensions": dims,
         "Value": 1.0 if size and not instances else 0.0, "Unit": "Count"},
        {"MetricName": "ApproximateAgeOfOldestRequest", "Dimensions": dims, "Value": oldest_s, "Unit": "Seconds"},
    ]


def _oldest(backlog: Backlog, now: float) -> float:
    try:
        return max(0.0, now - backlog.waiting[0].arrived)
    except IndexError:
        return 0.0


def _free_instance(ep: Any, backlog: Backlog, per_instance: int) -> tuple[str, Any] | None:
    """The live instance with the fewest requests in process, if it has a free slot."""
    if ep.live is None:
        return None
    best = None
    for variant, group in list(ep.live.instances.items()):
        for instance in tuple(group):
            n = backlog.busy.get(instance.port, 0)
            if n < per_instance and (best is None or n < best[0]):
                best = (n, variant, instance)
    return None if best is None else (best[1], best[2])


def _async_config(account: str, region: str, name: str) -> dict | None:
    """The endpoint's AsyncInferenceConfig ({} for a real-time endpoint), or None when it does not exist."""
    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends[account][region]
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        return None
    config = backend.endpoint_configs.get(endpoint.endpoint_config_name)
    return (getattr(config, "async_inference_config", None) or {}) if config else {}


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split("://", 1)[-1].partition("/")
    return bucket, key


def _join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def _read_s3(account: str, uri: str) -> bytes | None:
    from moto.s3.models import s3_backends

    if not uri.startswith(("s3://", "https://")):
        return None
    bucket, key = _split(uri)
    try:
        obj = s3_backends[account]["global"].get_object(bucket, key)
    except Exception:  # noqa: BLE001 - moto's MissingBucket and friends: the input is not there
        return None
    return None if obj is None else bytes(obj.value)


def _deliver(account: str, job: Job, status: int, data: bytes, content_type: str) -> bool:
    """The result to its S3 object (True: the output was written); an output that cannot be written (no such
    bucket) becomes a failure."""
    try:
        if 0 < status < 400:
            _write_s3(account, job.output, data, content_type or "application/octet-stream")
            return True
        data = _failure_body(status, data)
    except Exception as exc:  # noqa: BLE001 - moto's MissingBucket and friends
        data = json.dumps({"ErrorCode": "OutputWriteFailed", "Message": f"could not write {job.output}: {exc}"}).encode()
    try:
        _write_s3(account, job.failure, data, "application/json")
    except Exception as exc:  # noqa: BLE001 - nowhere left to say it but the twin's log
        print(f"sme local: async inference {job.inference_id}: no failure written to {job.failure}: {exc}", flush=True)
    return False


def _notify(backlog: Backlog, config: dict, job: Job, status: int, data: bytes, content_type: str) -> bool:
    """Announce the result on its topic, if the config names one (False: the topic could not take it)."""
    succeeded = 0 < status < 400
    topic, include_body = async_notify.topic_for(config, succeeded)
    if topic is None:
        return True
    failure_path_set = bool((config.get("OutputConfig") or {}).get("S3FailurePath"))
    note = async_notify.message(backlog.region, backlog.name, job, time.time(), status, content_type, data,
                                failure_path_set, include_body)
    return async_notify.publish(backlog.account, topic, async_notify.encode(note))


def _write_s3(account: str, uri: str, data: bytes, content_type: str) -> None:
    from moto.s3.models import s3_backends

    bucket, key = _split(uri)
    obj = s3_backends[account]["global"].put_object(bucket, key, data)
    obj.set_metadata({"Content-Type": content_type})


def _failure_body(status: int, data: bytes) -> bytes:
    original = data.decode("utf-8", "replace")
    kind = "client" if 400 <= status < 500 else "server"
    return json.dumps({"ErrorCode": "ModelError", "OriginalStatusCode": status, "OriginalMessage": original,
                       "Message": f'Received {kind} error ({status}) from primary with message "{original}".'}).encode()
