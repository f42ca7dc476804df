"""S3: the experiment's artifact bucket and the uploaded model.tar.gz."""

from __future__ import annotations

from typing import Any

from sme.aws import aws_call, is_not_found
from sme.core.executor import ExecContext, handles
from sme.core.models import DesiredArtifact, Step


@handles("create_bucket")
def create_bucket(ctx: ExecContext, step: Step) -> None:
    art: DesiredArtifact = step.params
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


@handles("upload_artifact")
def upload_artifact(ctx: ExecContext, step: Step) -> None:
    art: DesiredArtifact = step.params
    s3 = ctx.aws.client("s3")
    tagging = "&".join(f"{t['Key']}={t['Value']}" for t in ctx.tags[:1])
    with _progress(ctx, art) as callback, aws_call("s3:PutObject", art.url):
        s3.upload_file(art.local_path, art.bucket, art.key, Callback=callback,
                       ExtraArgs={"Metadata": {"sha256": art.sha256}, "Tagging": tagging})
    ctx.record("artifact", art.url, f"arn:aws:s3:::{art.bucket}/{art.key}", bucket=art.bucket, key=art.key)


class _progress:
    """A rich progress bar for the upload on a terminal; silent otherwise."""

    def __init__(self, ctx: ExecContext, art: DesiredArtifact):
        self.ctx, self.art = ctx, art
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.ctx.env.interactive:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress("upload", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=self.ctx.env.err,
                            transient=True)
        self.bar.start()
        task = self.bar.add_task("upload", total=self.art.size)
        return lambda n: self.bar.update(task, advance=n)

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()


def delete_artifact(aws: Any, bucket: str, key: str) -> bool:
    s3 = aws.client("s3")
    try:
        with aws_call("s3:HeadObject", f"s3://{bucket}/{key}"):
            s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc.__cause__ or exc):
            return False
        raise
    with aws_call("s3:DeleteObject", f"s3://{bucket}/{key}"):
        s3.delete_object(Bucket=bucket, Key=key)
    return True


def delete_bucket_if_empty(aws: Any, bucket: str) -> bool:
    s3 = aws.client("s3")
    try:
        with aws_call("s3:ListObjectsV2", bucket):
            listing = s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc.__cause__ or exc):
            return False
        raise
    if listing.get("KeyCount", 0):
        return False
    with aws_call("s3:DeleteBucket", bucket):
        s3.delete_bucket(Bucket=bucket)
    return True
