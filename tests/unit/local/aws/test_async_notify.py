"""The twin's asynchronous-inference notifications: AWS's documented message, field for field and in order,
and read back by the load test's own parser."""

from __future__ import annotations

import json

from sme.local.aws.async_notify import aws_time, message, topic_for
from sme.local.aws.async_queue import Job
from sme.loadtest.async_notice import parse

DOCUMENTED_ORDER = ["awsRegion", "eventTime", "receivedTime", "invocationStatus", "requestParameters",
                    "responseParameters", "inferenceId", "eventVersion", "eventSource", "eventName"]


def job(**kw) -> Job:
    base = dict(inference_id="abc", body=b"1,2", content_type="text/csv", accept="", output="s3://b/out/abc.out",
                failure="s3://b/failed/abc-error.out", timeout_s=900.0, input_location="s3://b/in/x",
                arrived=1643150760.455)
    return Job(**{**base, **kw})


def test_a_success_is_the_documented_message_in_the_documented_order():
    note = message("us-east-1", "ep", job(), 1643150760.6089, 200, "text/csv; charset=utf-8", b"0.5\n", True, False)
    assert list(note) == DOCUMENTED_ORDER
    assert note["eventTime"] == "2022-01-25T22:46:00.608Z" and note["receivedTime"] == "2022-01-25T22:46:00.455Z"
    assert note["invocationStatus"] == "Completed"
    assert note["requestParameters"] == {"contentType": "text/csv", "endpointName": "ep", "inputLocation": "s3://b/in/x"}
    assert note["responseParameters"] == {"contentType": "text/csv; charset=utf-8", "outputLocation": "s3://b/out/abc.out"}
    assert (note["eventVersion"], note["eventSource"], note["eventName"]) == ("1.0", "aws:sagemaker", "InferenceResult")
    read = parse(json.dumps(note))
    assert read.succeeded and read.inference_id == "abc" and read.location == "s3://b/out/abc.out"


def test_a_failure_has_a_reason_and_names_its_location_only_with_a_failure_path():
    note = message("us-east-1", "ep", job(), 1643150761.0, 415, "", b"bad", True, False)
    assert note["invocationStatus"] == "Failed"
    assert list(note)[:5] == ["awsRegion", "eventTime", "receivedTime", "invocationStatus", "failureReason"]
    assert note["failureReason"].startswith("ClientError: Received client error (415) from model.")
    assert note["responseParameters"] == {"failureLocation": "s3://b/failed/abc-error.out"}
    assert "responseParameters" not in message("us-east-1", "ep", job(), 1643150761.0, 500, "", b"", False, False)
    assert not parse(json.dumps(note)).succeeded


def test_the_reply_rides_along_only_where_asked_and_small_enough():
    config = {"OutputConfig": {"NotificationConfig": {"SuccessTopic": "arn:s", "ErrorTopic": "arn:e",
                                                      "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"]}}}
    assert topic_for(config, True) == ("arn:s", True) and topic_for(config, False) == ("arn:e", False)
    assert topic_for({"OutputConfig": {}}, True) == (None, False)
    note = message("us-east-1", "ep", job(), 1.0, 200, "text/csv", b"0.5\n", False, True)
    assert note["responseBody"] == {"content": "MC41Cg==", "encoding": "BASE64",
                                    "message": "Check S3 path location(if configured) or Cloudwatch for additional details."}
    assert "responseBody" not in message("us-east-1", "ep", job(), 1.0, 200, "", b"x" * (128 * 1024 + 1), False, True)


def test_times_are_truncated_to_the_millisecond():
    assert aws_time(0.9999) == "1970-01-01T00:00:00.999Z"
