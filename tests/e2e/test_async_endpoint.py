"""An asynchronous endpoint in the twin, end to end: `sme deploy` from the experiment file, `sme loadtest` with
InvokeEndpointAsync, and the results reconciled with the objects the twin wrote to S3 (the server's truth).

The payload mixes rows the model predicts with one it refuses (415), so results land under both the output
and the failure paths. The load is bounded: an open model at 15 requests a second for 4 seconds.
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_sme
from tests.e2e.test_local import local_aws, local_env as env  # noqa: F401  (fixtures: the twin in process)

pytestmark = pytest.mark.timeout(240)
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
RESULTS = "async-results"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    from sme.local.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("model"), payload_rows=4)


def s3(local_aws):
    import boto3

    return boto3.client("s3", endpoint_url=local_aws.url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def deploy_async(local_aws, env, demo_model, tmp_path, name: str = "churn-async", extra: str = "",
                 notify: str = "") -> None:
    s3(local_aws).create_bucket(Bucket=RESULTS)
    experiment = tmp_path / "sme.yaml"
    experiment.write_text(f"""
name: {name}
region: us-east-1
model: {{image: {IMAGE}, model_data: {demo_model.model_tar}, role: create}}
endpoint:
  variants: [{{instance_type: ml.m5.large, count: 1}}]
  async:
    output: s3://{RESULTS}/out/
    failure: s3://{RESULTS}/failed/
    max_concurrent_per_instance: 2
{notify}{extra}""")
    result = run_sme("deploy", "-c", str(experiment), "--poll-interval", "0.2s", "--timeout", "90s", env=env,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def keys(client, prefix: str) -> dict[str, float]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=RESULTS, Prefix=prefix)
    return {o["Key"]: o["LastModified"].timestamp() for page in pages for o in page.get("Contents", ())}


def test_an_async_load_test_accounts_for_every_request_and_its_latency_matches_the_objects(
        local_aws, env, demo_model, tmp_path):
    deploy_async(local_aws, env, demo_model, tmp_path)
    payload = tmp_path / "rows.csv"
    payload.write_text(demo_model.payload_csv.read_text().strip() + "\nnot,a,number\n")
    config = tmp_path / "loadtest.yaml"
    config.write_text(f"""
target: {{endpoint: churn-async, timeout: 30s}}
payload: {{file: {payload}, split: lines, content_type: text/csv}}
stages: [{{rate: 15, duration: 4s}}]
""")
    result = run_sme("loadtest", "-c", str(config), "--out", str(tmp_path / "run"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    book = summary["async"]
    assert book["submitted"] == 60 - summary["dropped"] and summary["dropped"] == 0, book
    assert book["succeeded"] + book["failed"] + book["pending"] == book["submitted"]
    assert book["pending"] == 0, "every result is written within the wait"
    assert "still pending at the end" in result.stdout + result.stderr

    # the server's truth: the objects the twin wrote
    client = s3(local_aws)
    outputs, failures = keys(client, "out/"), keys(client, "failed/")
    assert len(outputs) == book["succeeded"] and len(failures) == book["failed"] > 0, (book, len(outputs))
    assert summary["requests"] == book["succeeded"] + book["failed"] and summary["failures"] == book["failed"]
    assert summary["errors"] == [{"kind": "async", "code": "failed", "count": book["failed"]}]

    rows = list(csv.DictReader((tmp_path / "run" / "async_requests.csv").open()))
    assert len(rows) == book["submitted"] and len({r["inference_id"] for r in rows}) == len(rows)
    for row in rows:
        name = (f"out/{row['inference_id']}.out" if row["outcome"] == "succeeded"
                else f"failed/{row['inference_id']}-error.out")
        written = (outputs if row["outcome"] == "succeeded" else failures)[name]
        sent, seen = float(row["sent_at"]), float(row["seen_at"])
        assert float(row["written_at"]) == written, "the written time is the object's LastModified"
        # LastModified is in whole seconds: the object was written in [written, written + 1)
        assert sent < written + 1 and written <= seen, row
        assert seen - written <= 0.5 + 1.0 + 0.5, f"seen more than a poll interval after it was written: {row}"
        assert abs(float(row["e2e_ms"]) - (seen - sent) * 1000.0) < 50, row
    assert summary["latency_ms"]["max"] >= max(float(r["e2e_ms"]) for r in rows) * 0.99

    # teardown: the inputs sme uploaded are sme's, so the experiment's bucket goes too; the results stay
    down = run_sme("teardown", "--name", "churn-async", env=env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    said = down.stdout + down.stderr
    assert "every resource sme made is gone" in said and "kept" not in said.split("every resource")[1], said
    left = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert left == {RESULTS}, left
    assert keys(client, "out/") == outputs, "the results are the user's: teardown leaves them"
