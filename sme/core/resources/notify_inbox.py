"""The inbox `sme loadtest` makes for an asynchronous endpoint's SNS notifications, and how it goes away.

An inbox is one SQS queue subscribed to the endpoint's success and error topics for the length of a load test
(``sme.loadtest.async_inbox`` makes it). It is recorded in the experiment's state (kind
``async-notification-queue``, its name, region and topics) before it is created, so a run that is killed
leaves a record and ``sme teardown`` removes it: first every subscription of those topics that delivers to the
queue (they outlive a deleted queue in AWS), then the queue. The queue's ARN is not needed: a subscription's
endpoint ends in ``:<queue name>``, and sme's inbox names are unique per run.
"""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.errors import AwsError
from sme.core.executor import Deleter, ExecContext

KIND = "async-notification-queue"
GONE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def remove(sqs: Any, sns: Any, name: str, topics: list[str]) -> bool:
    """Unsubscribe the queue from the topics and delete it; False when nothing of it was left."""
    found = False
    for topic in topics:
        for arn in _subscriptions(sns, topic, name):
            if_found("sns:Unsubscribe", arn, lambda arn=arn: sns.unsubscribe(SubscriptionArn=arn))
            found = True
    try:
        with aws_call("sqs:GetQueueUrl", name):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except AwsError as exc:
        if exc.code in GONE:
            return found
        raise
    if_found("sqs:DeleteQueue", name, lambda: sqs.delete_queue(QueueUrl=url))
    return True


def _subscriptions(sns: Any, topic: str, name: str) -> list[str]:
    """The subscriptions of ``topic`` that deliver to the SQS queue ``name`` (none if the topic is gone)."""
    pages = if_found("sns:ListSubscriptionsByTopic", topic, lambda: list(
        sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)))
    return [s["SubscriptionArn"] for page in pages or () for s in page.get("Subscriptions", ())
            if s.get("Protocol") == "sqs" and s.get("Endpoint", "").endswith(f":{name}")
            and s.get("SubscriptionArn", "").startswith("arn:")]  # not "PendingConfirmation"


def delete_inbox(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    return remove(ctx.aws.client("sqs"), ctx.aws.client("sns"), name, list(extra.get("topics") or ()))


DELETERS = {KIND: Deleter(5, delete_inbox)}
