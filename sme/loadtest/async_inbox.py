"""In the parent, around a load test of an asynchronous endpoint whose config names SNS topics: an SQS inbox.

    endpoint config's NotificationConfig (SuccessTopic, ErrorTopic)
      -> record the inbox in the experiment's state (kind ``async-notification-queue``)   [before any create]
      -> CreateQueue (a policy letting only those topics send to it) -> Subscribe each topic (raw delivery)
      -> the load process receives from it (``async_load``) ... -> Unsubscribe, DeleteQueue, forget the record

Recording first means no AWS resource is ever untracked: a run killed at any point leaves the record, and
``sme teardown`` (``sme.core.resources.notify_inbox``) removes whatever of the inbox exists. If the inbox
cannot be made (no permission to create queues, a topic in another account that refuses the subscription)
the run says so and falls back to S3 polling, after removing what it made. Without topics nothing is made.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from sme.core.resources.notify_inbox import KIND, remove

Say = Callable[[str], None]


def notification_topics(sagemaker: Any, endpoint: str) -> dict[str, str]:
    """The endpoint's success and error topics, as its current endpoint config names them."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    notify = ((config.get("AsyncInferenceConfig") or {}).get("OutputConfig") or {}).get("NotificationConfig") or {}
    return {k: notify[t] for k, t in (("success", "SuccessTopic"), ("error", "ErrorTopic")) if notify.get(t)}


def open_inbox(target: dict[str, Any], say: Say) -> dict[str, Any] | None:
    """Make the inbox and put it in ``target["async"]["inbox"]``; None when the endpoint notifies no topic or
    the inbox could not be made (said, and cleaned up: the run then polls S3)."""
    from sme.aws import AwsContext

    spec = target["async"]
    aws = AwsContext.from_settings(None, spec["region"])
    try:
        topics = notification_topics(aws.client("sagemaker"), target["endpoint"])
    except Exception as exc:  # noqa: BLE001 - denied or unreadable: S3 polling needs none of it
        say(f"could not read {target['endpoint']}'s notification topics ({exc}): completions come from S3 polling")
        return None
    if not topics:
        return None
    name = f"sme-{spec['experiment']}-inbox-{uuid.uuid4().hex[:8]}"[-80:]
    inbox = {"name": name, "topics": sorted(set(topics.values())), "success": "success" in topics,
             "error": "error" in topics}
    _remember(spec["experiment"], inbox, spec["region"], say)
    try:
        inbox["queue_url"] = _create(aws.client("sqs"), aws.client("sns"), name, inbox["topics"])
    except Exception as exc:  # noqa: BLE001 - any refusal: undo, say it, and poll S3 instead
        close_inbox(target | {"async": spec | {"inbox": inbox}}, say)
        say(f"could not subscribe a queue to {', '.join(inbox['topics'])} ({exc}): completions come from S3 polling")
        return None
    spec["inbox"] = inbox
    say(f"receiving {target['endpoint']}'s notifications ({', '.join(sorted(topics))}) in SQS queue {name} "
        "for this run")
    return inbox


def _create(sqs: Any, sns: Any, name: str, topics: list[str]) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(_policy(arn, topics))})
    for topic in topics:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"},
                      ReturnSubscriptionArn=True)
    return url


def _policy(queue_arn: str, topics: list[str]) -> dict[str, Any]:
    """Only these topics may send to the inbox (SNS's documented queue policy for an SQS subscription)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "sme-async-notifications", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topics}}}]}


def close_inbox(target: dict[str, Any], say: Say) -> None:
    """Unsubscribe and delete the inbox, then forget its record; a failure is said, the record kept for
    ``sme teardown``."""
    from sme.aws import AwsContext

    spec = target.get("async") or {}
    inbox = spec.get("inbox")
    if not inbox:
        return
    aws = AwsContext.from_settings(None, spec["region"])
    try:
        remove(aws.client("sqs"), aws.client("sns"), inbox["name"], inbox["topics"])
    except Exception as exc:  # noqa: BLE001 - the record stays: teardown removes it later
        say(f"could not remove the notification queue {inbox['name']} ({exc}); `sme teardown --name "
            f"{spec['experiment']}` removes it")
        return
    _forget(spec["experiment"], inbox["name"], say)


def _remember(experiment: str, inbox: dict[str, Any], region: str, say: Say) -> None:
    from sme.state import experiment_lock, load_state, save_state

    with experiment_lock(experiment, "loadtest", wait=30.0, say=say):
        state = load_state(experiment, must_exist=True)
        state.record(KIND, inbox["name"], region=region, topics=inbox["topics"])
        save_state(state)


def _forget(experiment: str, name: str, say: Say) -> None:
    from sme.state import experiment_lock, load_state, save_state

    with experiment_lock(experiment, "loadtest", wait=30.0, say=say):
        state = load_state(experiment, must_exist=True)
        state.forget(KIND, name)
        save_state(state)
