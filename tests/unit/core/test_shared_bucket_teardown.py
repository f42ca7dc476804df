"""The artifact bucket is shared by experiments, and their teardowns may run side by side (`sme recommend`
tears candidates down in parallel): a bucket another teardown deleted meanwhile is gone, not a failure, and
one that an object reached after the listing is kept (S3's NoSuchBucket and BucketNotEmpty, as S3 sends
them, through botocore's Stubber)."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from sme.console import Env
from sme.core.executor import ExecContext
from sme.core.resources.s3 import KEPT, delete_bucket_if_empty
from sme.state import DeployState
from tests.unit.core.test_executor import FakeAws
from tests.unit.core.test_planner import desired

BUCKET = "sme-123456789012-us-east-1"


def teardown_with(answers) -> object:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(s3)
    for method, response in answers:
        if isinstance(response, tuple):
            stub.add_client_error(method, service_error_code=response[0], http_status_code=response[1])
        else:
            stub.add_response(method, response)
    ctx = ExecContext(aws=FakeAws({"s3": s3}), state=DeployState("churn"), env=Env(), desired=desired())
    with stub:
        result = delete_bucket_if_empty(ctx, BUCKET, {})
        stub.assert_no_pending_responses()
    return result


def test_a_bucket_deleted_by_another_teardown_meanwhile_is_gone_not_a_failure():
    for at in range(3):  # gone before the async inputs are listed, before the last listing, before the delete
        answers = [("head_bucket", {}), ("list_multipart_uploads", {"Bucket": BUCKET}),
                   ("list_objects_v2", {"KeyCount": 0}), ("list_objects_v2", {"KeyCount": 0}),
                   ("delete_bucket", {})]
        answers[2 + at] = (answers[2 + at][0], ("NoSuchBucket", 404))
        assert teardown_with(answers[:3 + at]) is False, at


def test_a_bucket_an_object_reached_after_the_listing_is_kept():
    assert teardown_with([("head_bucket", {}), ("list_multipart_uploads", {"Bucket": BUCKET}),
                          ("list_objects_v2", {"KeyCount": 0}), ("list_objects_v2", {"KeyCount": 0}),
                          ("delete_bucket", ("BucketNotEmpty", 409))]) == KEPT


def test_an_empty_bucket_is_deleted_and_any_other_error_still_fails_the_teardown():
    import pytest

    from sme.errors import AwsError

    assert teardown_with([("head_bucket", {}), ("list_multipart_uploads", {"Bucket": BUCKET}),
                          ("list_objects_v2", {"KeyCount": 0}), ("list_objects_v2", {"KeyCount": 0}),
                          ("delete_bucket", {})]) is True
    with pytest.raises(AwsError, match="AccessDenied"):
        teardown_with([("head_bucket", {}), ("list_multipart_uploads", {"Bucket": BUCKET}),
                       ("list_objects_v2", {"KeyCount": 0}), ("list_objects_v2", {"KeyCount": 0}),
                       ("delete_bucket", ("AccessDenied", 403))])
