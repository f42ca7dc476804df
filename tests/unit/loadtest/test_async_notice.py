"""Reading SageMaker's asynchronous-inference notifications: the messages as AWS documents them ("Check
prediction results") and as captured from AWS, raw or in SNS's envelope; and the per-request split they give."""

from __future__ import annotations

import json

import pytest

from sme.loadtest.async_notice import aws_time, parse
from sme.loadtest.async_target import AsyncBook

# the developer guide's success example (placeholders as the guide has them)
SUCCESS = {
    "awsRegion": "us-east-1", "eventTime": "2022-01-25T22:46:00.608Z", "receivedTime": "2022-01-25T22:46:00.455Z",
    "invocationStatus": "Completed",
    "requestParameters": {"contentType": "text/csv", "endpointName": "<example-endpoint>",
                          "inputLocation": "s3://<bucket>/<input-directory>/input-data.csv"},
    "responseParameters": {"contentType": "text/csv; charset=utf-8",
                           "outputLocation": "s3://<bucket>/<output_directory>/prediction.out"},
    "inferenceId": "11111111-2222-3333-4444-555555555555", "eventVersion": "1.0", "eventSource": "aws:sagemaker",
    "eventName": "InferenceResult"}
# the guide's error example: no responseParameters, a failureReason
FAILURE = {
    "awsRegion": "us-east-1", "eventTime": "2022-01-25T22:46:00.608Z", "receivedTime": "2022-01-25T22:46:00.455Z",
    "invocationStatus": "Failed",
    "failureReason": "ClientError: Received server error (500) from model. See the SageMaker Endpoint logs in your "
                     "account for more information.",
    "requestParameters": {"endpointName": "<example-endpoint>",
                          "inputLocation": "s3://<bucket>/<input-directory>/input-data.csv"},
    "inferenceId": "11111111-2222-3333-4444-555555555555", "eventVersion": "1.0", "eventSource": "aws:sagemaker",
    "eventName": "InferenceResult"}


def envelope(message: dict) -> str:
    """What an SQS queue subscribed without raw message delivery receives: SNS's envelope."""
    return json.dumps({"Type": "Notification", "MessageId": "c9cafd57-db5c-5f85-9c8f-a1b1e8b5a527",
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:done", "Message": json.dumps(message),
                       "Timestamp": "2022-01-25T22:46:00.700Z", "SignatureVersion": "1"})


@pytest.mark.parametrize("wrap", [json.dumps, envelope], ids=["raw", "sns-envelope"])
def test_a_documented_success_reads_as_completed_with_its_output_and_times(wrap):
    notice = parse(wrap(SUCCESS))
    assert notice is not None and notice.succeeded
    assert notice.inference_id == "11111111-2222-3333-4444-555555555555"
    assert notice.location == "s3://<bucket>/<output_directory>/prediction.out"
    assert notice.received_at == pytest.approx(1643150760.455) and notice.ready_at == pytest.approx(1643150760.608)
    assert round((notice.ready_at - notice.received_at) * 1000) == 153


@pytest.mark.parametrize("wrap", [json.dumps, envelope], ids=["raw", "sns-envelope"])
def test_a_documented_failure_reads_as_failed_with_its_reason(wrap):
    notice = parse(wrap(FAILURE))
    assert notice is not None and not notice.succeeded
    assert notice.failure_reason.startswith("ClientError: Received server error (500)")
    assert notice.location == "", "the guide's failure names no location"
    with_location = {**FAILURE, "responseParameters": {"failureLocation": "s3://b/failed/x-error.out"}}
    assert parse(json.dumps(with_location)).location == "s3://b/failed/x-error.out"


@pytest.mark.parametrize("body", [
    "not json", json.dumps([1]), json.dumps({"Type": "SubscriptionConfirmation", "Token": "t"}),
    json.dumps({**SUCCESS, "eventName": "ObjectCreated:Put"}), json.dumps({**SUCCESS, "invocationStatus": "Odd"}),
    json.dumps({k: v for k, v in SUCCESS.items() if k != "eventTime"}),
    json.dumps({**SUCCESS, "receivedTime": "yesterday"})])
def test_anything_but_an_inference_result_is_not_a_notice(body):
    assert parse(body) is None


def test_aws_times_are_utc_with_or_without_milliseconds():
    assert aws_time("1970-01-01T00:00:01.250Z") == 1.25
    assert aws_time("1970-01-01T00:00:01Z") == 1.0


def test_a_notification_ends_its_request_once_and_splits_its_time_into_parts_that_add_up():
    book = AsyncBook(lambda *a: ([], None), run="r")
    first, second = book.next_id(), book.next_id()
    book.submitted(first, "s3://b/out/" + first + ".out", "s3://b/failed/" + first + "-error.out", 100.0, 10.0)
    book.submitted(second, "s3://b/out/" + second + ".out", None, 100.5, 10.5)
    note = json.dumps({**SUCCESS, "inferenceId": first, "receivedTime": "1970-01-01T00:01:40.020Z",
                       "eventTime": "1970-01-01T00:01:40.170Z"})
    done = book.notified(parse(note), 100.2, 10.2)
    assert done is not None and done.succeeded and done.source == "sns" and done.e2e_ms == pytest.approx(200.0)
    assert book.notified(parse(note), 100.3, 10.3) is None, "SNS delivers at least once: a duplicate is ignored"
    assert book.notified(parse(json.dumps({**SUCCESS, "inferenceId": "someone-else"})), 100.3, 10.3) is None
    failed = json.dumps({**FAILURE, "inferenceId": second, "receivedTime": "1970-01-01T00:01:40.510Z",
                         "eventTime": "1970-01-01T00:01:40.900Z"})
    assert not book.notified(parse(failed), 101.0, 11.0).succeeded
    summary, split = book.summary(), book.split.summary()
    assert summary["succeeded"] == summary["failed"] == 1 and summary["pending"] == 0
    assert summary["seen_by"] == {"s3": 0, "sns": 2}
    assert split["requests"] == 2
    assert split["to_sagemaker_ms"]["mean"] == pytest.approx((20 + 10) / 2)
    assert split["in_sagemaker_ms"]["mean"] == pytest.approx((150 + 390) / 2)
    assert split["notification_ms"]["mean"] == pytest.approx((30 + 100) / 2)
    parts = sum(split[f"{p}_ms"]["mean"] for p in ("to_sagemaker", "in_sagemaker", "notification"))
    assert parts == pytest.approx(split["e2e_mean_ms"])
    assert split["in_sagemaker_ms"]["max"] == pytest.approx(390, rel=1e-3), "from the full histogram"


def test_the_s3_backstop_leaves_a_fresh_result_to_its_notification_on_the_way():
    book = AsyncBook(lambda bucket, prefix, after, token: ([(f"out/{rid}.out", 100.0)], None), run="r")
    rid = book.next_id()
    book.submitted(rid, f"s3://b/out/{rid}.out", None, 99.0, 9.0)
    assert book.poll(102.0, 12.0, settle_s=5.0) == [] and rid in book.pending, "written 2 s ago: not yet"
    note = json.dumps({**SUCCESS, "inferenceId": rid, "receivedTime": "1970-01-01T00:01:39.100Z",
                       "eventTime": "1970-01-01T00:01:40.000Z"})
    assert book.notified(parse(note), 102.5, 12.5).source == "sns"
    other = book.next_id()
    book.submitted(other, f"s3://b/out/{other}.out", None, 99.0, 9.0)
    book.list_page = lambda *a: ([(f"out/{other}.out", 100.0)], None)
    assert [c.source for c in book.poll(106.0, 16.0, settle_s=5.0)] == ["s3"], "its notification was lost"
