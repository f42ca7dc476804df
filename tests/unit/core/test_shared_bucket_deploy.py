"""The deploy side of the shared artifact bucket: another experiment's teardown may delete sme's bucket
between this deploy's CreateBucket (which found it) and its upload (`sme recommend` deploys and tears
candidates down side by side). Against moto's S3, in process: the bucket is made again, blocked, tagged and
recorded, and the artifact lands; a bucket the user named is not sme's to make."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from sme.console import Env
from sme.core import steps
from sme.core.executor import ExecContext
from sme.core.models import DesiredArtifact
from sme.core.resources.s3 import create_bucket, upload_artifact
from sme.errors import AwsError
from sme.state import DeployState
from tests.unit.core.test_executor import FakeAws
from tests.unit.core.test_planner import desired


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def artifact(tmp_path, default_bucket: bool) -> DesiredArtifact:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"model bytes")
    bucket = "sme-123456789012-us-east-1" if default_bucket else "my-team-models"
    return DesiredArtifact(local_path=str(path), bucket=bucket, key="churn/model-abc.tar.gz", sha256="abc",
                           size=path.stat().st_size, default_bucket=default_bucket)


def deploy_until_the_upload(s3, art: DesiredArtifact) -> ExecContext:
    ctx = ExecContext(aws=FakeAws({"s3": s3}), state=DeployState("churn"), env=Env(), desired=desired())
    if art.default_bucket:
        create_bucket(ctx, steps.CreateBucket(name=art.bucket, artifact=art))
    else:
        s3.create_bucket(Bucket=art.bucket)
    s3.delete_bucket(Bucket=art.bucket)  # another experiment's teardown found it empty, between the two steps
    return ctx


def test_sme_s_bucket_deleted_between_create_and_upload_is_made_again_and_the_artifact_lands(aws, tmp_path):
    art = artifact(tmp_path, default_bucket=True)
    ctx = deploy_until_the_upload(aws, art)
    upload_artifact(ctx, steps.UploadArtifact(name=art.url, artifact=art))
    assert aws.get_object(Bucket=art.bucket, Key=art.key)["Body"].read() == b"model bytes"
    assert {"Key": "sme:managed", "Value": "true"} in aws.get_bucket_tagging(Bucket=art.bucket)["TagSet"]
    block = aws.get_public_access_block(Bucket=art.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()), block
    assert ctx.state.find("bucket", art.bucket) and ctx.state.find("artifact", art.url), "both on record"


def test_a_bucket_the_user_named_is_not_made_again_and_the_error_names_the_upload(aws, tmp_path):
    art = artifact(tmp_path, default_bucket=False)
    ctx = deploy_until_the_upload(aws, art)
    with pytest.raises(AwsError) as err:
        upload_artifact(ctx, steps.UploadArtifact(name=art.url, artifact=art))
    assert err.value.code == "NoSuchBucket" and "s3:PutObject" in str(err.value) and art.url in str(err.value)
    assert art.bucket not in [b["Name"] for b in aws.list_buckets()["Buckets"]]
    assert ctx.state.find("artifact", art.url), "recorded before the upload: teardown looks for it"
