"""SageMaker's asynchronous-inference notifications, read as they arrive in an SQS queue subscribed to the topics.

What AWS documents ("Check prediction results", SageMaker developer guide) and what captured messages show:
a success message has ``invocationStatus: "Completed"`` and ``responseParameters.outputLocation``; a failure has
``invocationStatus: "Failed"``, a ``failureReason`` and (when the endpoint has an S3FailurePath)
``responseParameters.failureLocation``; both carry ``inferenceId``, ``receivedTime`` (SageMaker took the request
in) and ``eventTime`` (its result was ready), UTC with milliseconds (``2022-01-25T22:46:00.608Z``), and
``eventSource: "aws:sagemaker"``, ``eventName: "InferenceResult"``. Delivered to SQS with raw message delivery
the body is that JSON; without it, SNS's envelope (``Type: "Notification"``) holds it as the string
``Message``. Both are read here. Anything else (a subscription confirmation, a stranger's message) is
``None``: not a result. Pure: no AWS calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Notice:
    inference_id: str
    succeeded: bool
    received_at: float  # epoch seconds, SageMaker's clock (millisecond resolution)
    ready_at: float  # eventTime: the result was ready
    location: str  # the output (success) or failure object, when the message names it
    failure_reason: str = ""


def parse(body: str) -> Notice | None:
    """The notice in one SQS message body, or None when the body is not a SageMaker inference result."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"])  # SNS's envelope (no raw message delivery)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("eventName") != "InferenceResult" or not data.get("inferenceId"):
        return None
    status = data.get("invocationStatus")
    if status not in ("Completed", "Failed"):
        return None
    try:
        received, ready = aws_time(data["receivedTime"]), aws_time(data["eventTime"])
    except (KeyError, TypeError, ValueError):
        return None
    response = data.get("responseParameters") or {}
    succeeded = status == "Completed"
    location = response.get("outputLocation" if succeeded else "failureLocation") or ""
    return Notice(str(data["inferenceId"]), succeeded, received, ready, location, data.get("failureReason") or "")


def aws_time(text: str) -> float:
    """``2022-01-25T22:46:00.608Z`` (or without the milliseconds) as epoch seconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
