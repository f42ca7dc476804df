"""An asynchronous endpoint that notifies through SNS, in the twin: `sme loadtest` learns each result from its
notification (an SQS inbox subscribed to the topics for the run), splits each request's time with the
notification's receivedTime and eventTime, reconciles that with CloudWatch's per-minute TimeInBacklog,
ModelLatency and TotalProcessingTime, and leaves nothing behind in SNS or SQS; a run killed before it could
clean up leaves a record that `sme teardown` removes.

The load is bounded: an open model at 10 requests a second for 3 seconds, one row of four refused (415).
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_sme
from tests.e2e.test_async_endpoint import deploy_async, demo_model  # noqa: F401  (fixture)
from tests.e2e.test_local import local_aws, local_env as env  # noqa: F401  (fixtures: the twin in process)

pytestmark = pytest.mark.timeout(240)
NAME = "churn-notify"


def clients(local_aws):
    import boto3

    kw = dict(endpoint_url=local_aws.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local")
    return boto3.client("sns", **kw), boto3.client("sqs", **kw)


def topics(local_aws) -> tuple[str, str]:
    sns, _ = clients(local_aws)
    return (sns.create_topic(Name="async-done")["TopicArn"], sns.create_topic(Name="async-failed")["TopicArn"])


def deploy_notifying(local_aws, env, demo_model, tmp_path) -> tuple[str, str]:
    success, error = topics(local_aws)
    deploy_async(local_aws, env, demo_model, tmp_path, name=NAME,
                 notify=f"    notify: {{success: '{success}', error: '{error}'}}\n")
    return success, error


def left_in_sns_and_sqs(local_aws, arns: tuple[str, ...]) -> tuple[list, list]:
    sns, sqs = clients(local_aws)
    subscriptions = [s for arn in arns for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]]
    return subscriptions, sqs.list_queues().get("QueueUrls", [])


def recorded_kinds(tmp_path) -> set[str]:
    state = json.loads((tmp_path / ".sme" / f"{NAME}.json").read_text())
    return {r["kind"] for r in state["resources"]}


def test_an_async_load_test_ends_each_request_by_its_notification_and_splits_its_time(
        local_aws, env, demo_model, tmp_path):
    arns = deploy_notifying(local_aws, env, demo_model, tmp_path)
    payload = tmp_path / "rows.csv"
    payload.write_text(demo_model.payload_csv.read_text().strip() + "\nnot,a,number\n")
    config = tmp_path / "loadtest.yaml"
    config.write_text(f"""
target: {{endpoint: {NAME}, timeout: 30s}}
payload: {{file: {payload}, split: lines, content_type: text/csv}}
stages: [{{rate: 10, duration: 3s}}]
""")
    result = run_sme("loadtest", "-c", str(config), "--out", str(tmp_path / "run"), env={
        **env, "SME_CLOUDWATCH_WAIT_S": "60"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    book = json.loads((tmp_path / "run" / "summary.json").read_text())["async"]

    # every request accounted for, each through its notification
    assert book["submitted"] == 30 and book["pending"] == 0, book
    assert book["succeeded"] + book["failed"] == 30 and book["failed"] > 0, book
    # each once, by its notification, or by the S3 backstop, which takes only results older than its settle
    # time (S3 lists LastModified in whole seconds: up to a second older than written); on a busy machine a
    # notification can come later than that
    seen = book["seen_by"]
    assert seen["sns"] + seen["s3"] == 30 and seen["sns"] >= 15, book
    assert book["completions_from"].startswith("sns") and "receiving" in said, said
    rows = list(csv.DictReader((tmp_path / "run" / "async_requests.csv").open()))
    assert len(rows) == 30 and {r["seen_by"] for r in rows} <= {"sns", "s3"}
    late = 5.0 - 1.0  # sme.loadtest.async_load.BACKSTOP_POLL_S (a gevent module: not imported here) less 1 s
    assert all(float(r["seen_at"]) - float(r["written_at"]) >= late for r in rows if r["seen_by"] == "s3"), rows
    notified = [r for r in rows if r["seen_by"] == "sns"]
    assert all(float(r["received_at"]) <= float(r["written_at"]) for r in notified), "receivedTime <= eventTime"

    # per request, the three parts add up to the end-to-end time: exactly, but for the offset between the
    # wall clock and the monotonic one that the load process reads once (a busy machine may delay that read)
    split = book["per_request"]
    assert split["requests"] == seen["sns"]
    parts = sum(split[f"{p}_ms"]["mean"] for p in ("to_sagemaker", "in_sagemaker", "notification"))
    assert abs(parts - split["e2e_mean_ms"]) <= 20.0, split
    assert min(split[f"{p}_ms"]["mean"] for p in ("to_sagemaker", "in_sagemaker", "notification")) >= -1.0, split

    # per minute, CloudWatch: it counted every request; queue + model fit in receipt-to-processed, whose mean
    # matches the notifications' receivedTime -> eventTime (it also holds the publish, and 3-digit rounding)
    minute = book["per_minute"]
    assert minute["complete"] and minute["requests_processed"] == 30, minute
    queue, model, total = (minute[f"{p}_ms"]["mean"] for p in ("queue", "model", "total_processing"))
    assert queue + model <= total * 1.01 + 0.1, minute
    assert abs(total - split["in_sagemaker_ms"]["mean"]) <= 10.0 + 0.02 * total, (minute, split)
    assert "per minute (CloudWatch, not per request)" in said, said

    # nothing left behind: no subscription, no queue, no record
    assert left_in_sns_and_sqs(local_aws, arns) == ([], []), "the run's inbox is gone"
    assert "async-notification-queue" not in recorded_kinds(tmp_path)


def test_teardown_removes_the_inbox_of_a_run_that_was_killed(local_aws, env, demo_model, tmp_path, monkeypatch):
    """The inbox is recorded before it is made: a run killed after making it leaves its record for teardown."""
    from sme.loadtest.async_inbox import open_inbox

    arns = deploy_notifying(local_aws, env, demo_model, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    target = {"endpoint": NAME, "async": {"region": "us-east-1", "experiment": NAME}}
    inbox = open_inbox(target, print)  # ... and the run dies here, before close_inbox
    assert inbox and inbox["success"] and inbox["error"]
    subscriptions, queues = left_in_sns_and_sqs(local_aws, arns)
    assert len(subscriptions) == 2 and queues == [inbox["queue_url"]]
    assert "async-notification-queue" in recorded_kinds(tmp_path)

    down = run_sme("teardown", "--name", NAME, env=env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert left_in_sns_and_sqs(local_aws, arns) == ([], []), down.stdout + down.stderr
