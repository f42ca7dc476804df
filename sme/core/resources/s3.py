"""S3: the experiment's artifact bucket and the uploaded model.tar.gz."""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext
from sme.core.names import ASYNC_INPUTS
from sme.errors import AwsError


def create_bucket(ctx: ExecContext, step: steps.CreateBucket) -> None:
    """Create the bucket if it is missing, then block public access and tag it (also finishing a bucket an
    interrupted deploy made but did not block or tag)."""
    art = step.artifact
    s3 = ctx.aws.client("s3")
    kwargs: dict[str, Any] = {"Bucket": art.bucket}
    if ctx.aws.region and ctx.aws.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.aws.region}
    if if_found("s3:HeadBucket", art.bucket, lambda: s3.head_bucket(Bucket=art.bucket)) is None:
        # recorded first: a bucket has no tags until it exists, so a run killed right after CreateBucket would
        # otherwise leave one nothing can tell from the user's own
        ctx.record("bucket", art.bucket, f"arn:aws:s3:::{art.bucket}")
        try:
            with aws_call("s3:CreateBucket", art.bucket):
                s3.create_bucket(**kwargs)
        except Exception:
            ctx.forget("bucket", art.bucket)
            raise
    ctx.record("bucket", art.bucket, f"arn:aws:s3:::{art.bucket}")
    with aws_call("s3:PutPublicAccessBlock", art.bucket):
        s3.put_public_access_block(Bucket=art.bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
    with aws_call("s3:PutBucketTagging", art.bucket):
        s3.put_bucket_tagging(Bucket=art.bucket, Tagging={"TagSet": [{"Key": "sme:managed", "Value": "true"}]
                                                              + ctx.tags[:1]})


def upload_artifact(ctx: ExecContext, step: steps.UploadArtifact) -> None:
    """Recorded before the upload starts: a run killed mid-upload leaves a multipart upload that teardown
    must abort. An sme-made bucket another experiment created is recorded too, so the last teardown that
    leaves it empty deletes it.

    Experiments share sme's bucket, and another one's teardown deletes it once it is empty: between this
    deploy's look at it (CreateBucket found it) and this upload, when `sme recommend` deploys and tears
    candidates down side by side. S3 then answers NoSuchBucket: sme's own bucket is made again (recorded,
    blocked and tagged, as CreateBucket does) and the upload tried once more. A bucket the user named is
    theirs to make: that error stands."""
    art = step.artifact
    s3 = ctx.aws.client("s3")
    ctx.record("artifact", art.url, f"arn:aws:s3:::{art.bucket}/{art.key}", bucket=art.bucket, key=art.key)
    try:
        _upload(ctx, s3, art)
    except AwsError as exc:
        if exc.code != "NoSuchBucket" or not art.default_bucket:
            raise
        create_bucket(ctx, steps.CreateBucket(name=art.bucket, why="deleted by another experiment's teardown",
                                              artifact=art))
        _upload(ctx, s3, art)
    if not ctx.state.find("bucket", art.bucket) and sme_managed(s3, art.bucket):
        ctx.record("bucket", art.bucket, f"arn:aws:s3:::{art.bucket}")


def _upload(ctx: ExecContext, s3: Any, art: Any) -> None:
    tagging = "&".join(f"{t['Key']}={t['Value']}" for t in ctx.tags[:1])
    with ctx.env.progress("upload", art.size) as callback, aws_call("s3:PutObject", art.url):
        s3.upload_file(art.local_path, art.bucket, art.key, Callback=callback,
                       ExtraArgs={"Metadata": {"sha256": art.sha256}, "Tagging": tagging})


def sme_managed(s3: Any, bucket: str) -> bool:
    tags = if_found("s3:GetBucketTagging", bucket, lambda: s3.get_bucket_tagging(Bucket=bucket))
    return bool(tags) and {"Key": "sme:managed", "Value": "true"} in tags.get("TagSet", [])


def abort_uploads(s3: Any, bucket: str, prefix: str) -> int:
    """Abort the multipart uploads under ``prefix`` that a killed upload left (they cost storage, unseen)."""
    with aws_call("s3:ListMultipartUploads", f"s3://{bucket}/{prefix}"):
        uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    for upload in uploads:
        if_found("s3:AbortMultipartUpload", upload["Key"], lambda: s3.abort_multipart_upload(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]))
    return len(uploads)


def delete_artifact(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    s3, bucket, key = ctx.aws.client("s3"), extra["bucket"], extra["key"]
    if if_found("s3:HeadBucket", bucket, lambda: s3.head_bucket(Bucket=bucket)) is None:
        return False
    aborted = abort_uploads(s3, bucket, key)
    if if_found("s3:HeadObject", name, lambda: s3.head_object(Bucket=bucket, Key=key)) is None:
        return aborted > 0
    with aws_call("s3:DeleteObject", f"s3://{bucket}/{key}"):
        s3.delete_object(Bucket=bucket, Key=key)
    return True


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix`` (sme's own: the inputs ``sme loadtest`` uploaded for an
    asynchronous endpoint, named under the experiment); a thousand per DeleteObjects call."""
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    with aws_call("s3:ListObjectsV2", f"s3://{bucket}/{prefix}"):
        pages = list(paginator.paginate(Bucket=bucket, Prefix=prefix))
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            with aws_call("s3:DeleteObjects", f"s3://{bucket}/{prefix}"):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


KEPT = "kept: it holds other objects (another experiment's artifacts?)"


def delete_bucket_if_empty(ctx: ExecContext, bucket: str, extra: dict[str, Any]) -> bool | str:
    """The bucket goes only once it is empty (it may hold other experiments' artifacts: then it is kept,
    and the teardown of the last experiment that uses it deletes it). The experiment's async load-test
    inputs are sme's own and go first.

    Experiments share the bucket, so another one's teardown may empty and delete it while this one runs
    (`sme recommend` tears candidates down side by side): S3's NoSuchBucket from then on means it is gone,
    and DeleteBucket's BucketNotEmpty that an object came in since the listing, so it is kept."""
    s3 = ctx.aws.client("s3")
    try:
        if if_found("s3:HeadBucket", bucket, lambda: s3.head_bucket(Bucket=bucket)) is None:
            return False
        abort_uploads(s3, bucket, f"{ctx.state.experiment}/")
        delete_prefix(s3, bucket, f"{ASYNC_INPUTS}/{ctx.state.experiment}/")
        listing = if_found("s3:ListObjectsV2", bucket, lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys=1))
        if listing is None:
            return False
        if listing.get("KeyCount", 0):
            return KEPT
        with aws_call("s3:DeleteBucket", bucket):
            s3.delete_bucket(Bucket=bucket)
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            return False
        if exc.code == "BucketNotEmpty":
            return KEPT
        raise
    return True


HANDLERS = {steps.CreateBucket: create_bucket, steps.UploadArtifact: upload_artifact}
DELETERS = {"artifact": Deleter(70, delete_artifact), "bucket": Deleter(80, delete_bucket_if_empty)}
