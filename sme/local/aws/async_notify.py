"""SageMaker Asynchronous Inference's SNS notifications and per-request metrics, in the twin.

AWS behaviour reproduced ("Check prediction results" in the SageMaker developer guide, the
AsyncInferenceNotificationConfig API reference, and "Monitor asynchronous endpoints"):

- when a request's output object is written and the endpoint config names a ``SuccessTopic``, SageMaker
  publishes to it; when its failure is written and there is an ``ErrorTopic``, to that one. No topic, no
  notification. The message is JSON, field for field as the guide's examples (and messages captured from AWS)
  show them, in this order::

      {"awsRegion", "eventTime", "receivedTime", "invocationStatus": "Completed" | "Failed",
       "failureReason" (failures only), "requestParameters": {"accept"?, "contentType"?, "endpointName",
       "inputLocation"}, "responseParameters": {"contentType", "outputLocation"} (success) or
       {"failureLocation"} (failure, when the config has an S3FailurePath), "responseBody"?, "inferenceId",
       "eventVersion": "1.0", "eventSource": "aws:sagemaker", "eventName": "InferenceResult"}

  ``receivedTime`` is when SageMaker took the request in, ``eventTime`` when its result was ready; both UTC with
  milliseconds (``2022-01-25T22:46:00.608Z``). ``requestParameters`` carries the Accept and ContentType only
  when the request set them. With ``IncludeInferenceResponseIn`` naming the topic, the model's reply (at most
  128 KB) rides along as ``responseBody: {content (base64), message, encoding: "BASE64"}``.
- a topic that does not exist (or refuses) is counted in ``NotificationFailures``; the result stays in S3.
- per request, with dimensions EndpointName and VariantName: ``TimeInBacklog`` (microseconds the request
  waited before processing began), ``TotalProcessingTime`` (milliseconds from receipt to the end of
  processing, backlog, upload and notification included) and ``InvocationsProcesssed`` (AWS spells it with
  three s), published each metrics period as distributions, as the twin's other latencies are.

Not documented by AWS, so chosen here: the wording of ``failureReason`` for a timeout, and that a failure
message names its ``failureLocation`` only when a failure path is configured. Moto's topic keeps every message
it publishes (``sent_notifications``); the twin trims that list so a long load does not grow it without end.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from sme.local.aws.metric_data import distribution_data, rounded

RESPONSE_BODY_LIMIT = 128 * 1024
KEEP_SENT = 100  # messages moto's topic keeps for its own inspection API
RESPONSE_BODY_MESSAGE = "Check S3 path location(if configured) or Cloudwatch for additional details."


def aws_time(epoch: float) -> str:
    """``2022-01-25T22:46:00.608Z``: UTC, milliseconds (truncated), as SageMaker writes its notification times."""
    moment = datetime.fromtimestamp(int(epoch * 1000) / 1000.0, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_reason(status: int) -> str:
    if not status:
        return "ClientError: Your invocation timed out while waiting for a response from container primary."
    kind = "client" if 400 <= status < 500 else "server"
    return (f"ClientError: Received {kind} error ({status}) from model. See the SageMaker Endpoint logs in your "
            "account for more information.")


def message(region: str, endpoint: str, job: Any, ready_at: float, status: int, content_type: str, body: bytes,
            failure_path_set: bool, include_body: bool) -> dict[str, Any]:
    """The notification SageMaker publishes for one finished request (``job``: ``async_queue.Job``)."""
    succeeded = 0 < status < 400
    out: dict[str, Any] = {"awsRegion": region, "eventTime": aws_time(ready_at), "receivedTime": aws_time(job.arrived),
                           "invocationStatus": "Completed" if succeeded else "Failed"}
    if not succeeded:
        out["failureReason"] = failure_reason(status)
    request = {"accept": job.accept, "contentType": job.content_type}
    out["requestParameters"] = {**{k: v for k, v in request.items() if v}, "endpointName": endpoint,
                                "inputLocation": job.input_location}
    if succeeded:
        out["responseParameters"] = {"contentType": content_type or "application/octet-stream",
                                     "outputLocation": job.output}
    elif failure_path_set:
        out["responseParameters"] = {"failureLocation": job.failure}
    if include_body and len(body) <= RESPONSE_BODY_LIMIT:
        out["responseBody"] = {"content": base64.b64encode(body).decode(), "message": RESPONSE_BODY_MESSAGE,
                               "encoding": "BASE64"}
    return {**out, "inferenceId": job.inference_id, "eventVersion": "1.0", "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult"}


def topic_for(config: dict, succeeded: bool) -> tuple[str | None, bool]:
    """(the topic to notify, whether the reply rides along) for a request that succeeded or failed."""
    notify = (config.get("OutputConfig") or {}).get("NotificationConfig") or {}
    topic = notify.get("SuccessTopic" if succeeded else "ErrorTopic") or None
    wanted = "SUCCESS_NOTIFICATION_TOPIC" if succeeded else "ERROR_NOTIFICATION_TOPIC"
    return topic, wanted in (notify.get("IncludeInferenceResponseIn") or ())


def publish(account: str, topic_arn: str, text: str) -> bool:
    """Publish to the twin's SNS (moto's, in the topic's region); False when the topic cannot take it."""
    from moto.sns.models import sns_backends

    try:
        backend = sns_backends[account][topic_arn.split(":")[3]]
        backend.publish(text, arn=topic_arn)
        sent = backend.topics[topic_arn].sent_notifications
        del sent[:-KEEP_SENT]
        return True
    except Exception:  # noqa: BLE001 - moto's TopicNotFound and friends: AWS counts it, the result stays in S3
        return False


class AsyncRequestMetrics:
    """TimeInBacklog, TotalProcessingTime, InvocationsProcesssed and NotificationFailures per variant, counted
    on the front's loop and published by the control loop each period."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str, str, str], dict[str, Any]] = defaultdict(_window)

    def count(self, account: str, region: str, endpoint: str, variant: str, backlog_s: float, total_s: float,
              notify_failed: bool) -> None:
        with self.lock:
            w = self.windows[(account, region, endpoint, variant)]
            w["backlog_us"][rounded(backlog_s * 1e6)] += 1
            w["total_ms"][rounded(total_s * 1e3)] += 1
            w["processed"] += 1
            w["notify_failures"] += int(notify_failed)

    def flush(self) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        with self.lock:
            windows, self.windows = self.windows, defaultdict(_window)
        for (account, region, endpoint, variant), w in windows.items():
            dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
            data = (distribution_data("TimeInBacklog", dims, w["backlog_us"])
                    + distribution_data("TotalProcessingTime", dims, w["total_ms"], unit="Milliseconds")
                    + [{"MetricName": "InvocationsProcesssed", "Dimensions": dims, "Value": float(w["processed"]),
                        "Unit": "Count"},
                       {"MetricName": "NotificationFailures", "Dimensions": dims,
                        "Value": float(w["notify_failures"]), "Unit": "Count"}])
            cloudwatch_backends[account][region].put_metric_data("AWS/SageMaker", data)


def _window() -> dict[str, Any]:
    return {"backlog_us": Counter(), "total_ms": Counter(), "processed": 0, "notify_failures": 0}


def encode(notification: dict[str, Any]) -> str:
    return json.dumps(notification, separators=(",", ":"))
