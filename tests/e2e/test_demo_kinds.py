"""`sme demo --kind serverless|async|llm --minutes 1`, as a user runs it: the real CLI, a real local AWS, real
runtimes and real load. Each kind's closing numbers must reconcile with what the twin itself saw, which the
demo reads before it stops the twin and writes to demo.json beside the load test's summary.json."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(420)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_demo(tmp_path: Path, kind: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / kind
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    proc = subprocess.run([sys.executable, "-m", "sme", "demo", "--kind", kind, "--minutes", "1", "--out", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "done: results in" in proc.stderr
    assert not (out / ".sme" / "demo.json").exists(), "teardown should have removed the deploy state"
    leftovers = subprocess.run(["pgrep", "-f", f"sme.local.runtime.*{out}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"runtime processes left running: {leftovers.stdout}"
    return proc, out


def read(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def same_endpoint_as_the_example(out: Path, kind: str, bucket: str = "") -> None:
    """The demo deploys the endpoint section users find in examples/<kind>/sme.yaml."""
    mine = yaml.safe_load((out / "sme.yaml").read_text())["endpoint"]
    example = yaml.safe_load((EXAMPLES / kind / "sme.yaml").read_text())["endpoint"]
    if bucket:
        example["async"] = {k: v.replace("my-results-bucket/churn", bucket) if isinstance(v, str) else v
                            for k, v in example["async"].items()}
    assert mine == example


def test_serverless_demo_shows_cold_starts_and_throttles_and_they_reconcile_with_the_twin(tmp_path):
    proc, out = run_demo(tmp_path, "serverless")
    s, demo = read(out, "summary.json"), read(out, "demo.json")
    sl, twin = s["serverless"], demo["twin"]
    assert s["requests"] > 0 and not s["partial"]
    assert sl["complete"], "CloudWatch counted every request the endpoint took in"
    assert s["requests"] == sl["cloudwatch_invocations"] + sl["throttles"], "requests = invocations + throttled"
    assert sl["throttles"] == twin["throttles"] > 0, "throttles as the client counted them and as the twin refused"
    assert sl["cold_starts"] == twin["runtimes_started"], "each cold start is a runtime the twin started"
    assert sl["cold_starts"] > sl["max_concurrency"], "the burst after the idle gap starts runtimes again"
    assert s["failures"] == sl["throttles"], "nothing failed but throttles"
    assert f"cold starts: {sl['cold_starts']} " in proc.stderr and f"throttled: {sl['throttles']} " in proc.stderr
    same_endpoint_as_the_example(out, "serverless")


def test_async_demo_builds_a_backlog_and_accounts_for_every_request(tmp_path):
    proc, out = run_demo(tmp_path, "async")
    s, demo = read(out, "summary.json"), read(out, "demo.json")
    book, twin = s["async"], demo["twin"]
    assert book["submitted"] > 0 and s["dropped"] == 0
    assert book["succeeded"] + book["failed"] + book["pending"] == book["submitted"]
    assert book["pending"] == 0 and book["failed"] == 0, book
    assert twin["output_objects"] == book["succeeded"] and twin["failure_objects"] == 0, (twin, book)
    assert s["requests"] == book["succeeded"]
    rows = list(csv.DictReader((out / "async_requests.csv").open()))
    assert len(rows) == book["submitted"] == len({r["inference_id"] for r in rows})
    assert demo["backlog_max"] > 1, "the burst should have queued requests the watch saw (ApproximateBacklogSize)"
    assert f"requests: {book['submitted']} submitted = {book['succeeded']} succeeded" in proc.stderr
    same_endpoint_as_the_example(out, "async", bucket="sme-demo-results")


def test_llm_demo_streams_a_concurrency_ladder_and_its_tokens_match_the_models(tmp_path):
    proc, out = run_demo(tmp_path, "llm")
    s, demo = read(out, "summary.json"), read(out, "demo.json")
    stream, twin = s["stream"], demo["twin"]
    assert s["failures"] == 0 and s["requests"] == stream["requests_with_tokens"] > 0
    assert stream["output_tokens"] == twin["tokens"], "tokens as streamed = tokens the model logged sending"
    assert stream["requests_with_tokens"] == twin["streams_with_tokens"]
    assert [st["users"] for st in s["stages"]] == [2, 4, 6, 8], "a ladder of users"
    assert all(st["stream"]["output_tokens"] > 0 and st["stream"]["ttft_ms"]["p99"] for st in s["stages"])
    assert sum(st["stream"]["output_tokens"] for st in s["stages"]) == stream["output_tokens"]
    # what the report draws TTFT, ITL and tokens from, on the load test's time axis
    rows = list(csv.DictReader((out / "timeseries.csv").open()))
    assert sum(int(r["output_tokens"]) for r in rows) == stream["output_tokens"]
    assert any(r["ttft_p99_ms"] for r in rows) and any(r["itl_p99_ms"] for r in rows)
    samples = [json.loads(line) for line in (out / "watch.jsonl").read_text().splitlines()]
    assert any((m or {}).get("Invocations") for sample in samples for m in (sample.get("metrics") or {}).values())
    assert (out / "report.html").exists()
    assert "time to first token p99" in proc.stderr and f"tokens: {stream['output_tokens']} " in proc.stderr
    same_endpoint_as_the_example(out, "llm")


def test_an_unknown_kind_exits_2_and_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sme", "demo", "--kind", "batch", "--out", str(tmp_path / "x")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--kind" in proc.stderr and "Traceback" not in proc.stderr
    assert "realtime" in proc.stderr and "llm" in proc.stderr, "the message lists the kinds there are"
    assert not (tmp_path / "x").exists()
