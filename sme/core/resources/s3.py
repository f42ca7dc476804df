"""S3: the experiment's artifact bucket and the uploaded model.tar.gz."""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext


def create_bucket(ctx: ExecContext, step: steps.CreateBucket) -> None:
    art = step.artifact
    s3 = ctx.aws.client("s3")
    kwargs: dict[str, Any] = {"Bucket": art.bucket}
    if ctx.aws.region and ctx.aws.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.aws.region}
    with aws_call("s3:CreateBucket", art.bucket):
        s3.create_bucket(**kwargs)
    ctx.record("bucket", art.bucket, f"arn:aws:s3:::{art.bucket}")
    with aws_call("s3:PutPublicAccessBlock", art.bucket):
        s3.put_public_access_block(Bucket=art.bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
    with aws_call("s3:PutBucketTagging", art.bucket):
        s3.put_bucket_tagging(Bucket=art.bucket, Tagging={"TagSet": [{"Key": "sme:managed", "Value": "true"}]})


def upload_artifact(ctx: ExecContext, step: steps.UploadArtifact) -> None:
    art = step.artifact
    s3 = ctx.aws.client("s3")
    tagging = "&".join(f"{t['Key']}={t['Value']}" for t in ctx.tags[:1])
    with ctx.env.progress("upload", art.size) as callback, aws_call("s3:PutObject", art.url):
        s3.upload_file(art.local_path, art.bucket, art.key, Callback=callback,
                       ExtraArgs={"Metadata": {"sha256": art.sha256}, "Tagging": tagging})
    ctx.record("artifact", art.url, f"arn:aws:s3:::{art.bucket}/{art.key}", bucket=art.bucket, key=art.key)


def delete_artifact(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    s3, bucket, key = ctx.aws.client("s3"), extra["bucket"], extra["key"]
    if if_found("s3:HeadObject", name, lambda: s3.head_object(Bucket=bucket, Key=key)) is None:
        return False
    with aws_call("s3:DeleteObject", f"s3://{bucket}/{key}"):
        s3.delete_object(Bucket=bucket, Key=key)
    return True


def delete_bucket_if_empty(ctx: ExecContext, bucket: str, extra: dict[str, Any]) -> bool:
    """The bucket goes only once it is empty (it may hold other experiments' artifacts)."""
    s3 = ctx.aws.client("s3")
    listing = if_found("s3:ListObjectsV2", bucket, lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys=1))
    if listing is None or listing.get("KeyCount", 0):
        return False
    with aws_call("s3:DeleteBucket", bucket):
        s3.delete_bucket(Bucket=bucket)
    return True


HANDLERS = {steps.CreateBucket: create_bucket, steps.UploadArtifact: upload_artifact}
DELETERS = {"artifact": Deleter(70, delete_artifact), "bucket": Deleter(80, delete_bucket_if_empty)}
