"""`sme demo --kind serverless|async|llm`: what each endpoint kind's experiment adds to the demo's pipeline.

The pipeline (sme/local/demo.py) is the same for every kind: local AWS, this kind's ``prepare`` (make what
its experiment needs and write ``sme.yaml`` and ``load.yaml``, as a user would, like the files under
``examples/<kind>/``), `sme deploy`, `sme loadtest` while `sme watch` samples, this kind's ``tally``, `sme
report`, `sme teardown`. ``tally`` reads the run directory and the twin itself, before teardown stops it,
so the closing summary can say the kind's own numbers and whether they reconcile with what the server
saw; it writes them to ``demo.json`` too. The files are written here as text, with comments, because they
are what the user reads and reruns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SERVERLESS_IDLE_ENV = "SME_SERVERLESS_IDLE_S"  # (sme.local.aws.serverless.IDLE_ENV: how long a runtime stays warm)
RESULTS_BUCKET = "sme-demo-results"
# metrics and scaling every 2 s (AWS: every minute), so that a few minutes show what AWS shows in an hour
TWIN = {"metrics_period": 2.0, "scaling_period": 2.0, "scaling_window": 15.0}
BATCH_COPIES = 10  # an async request scores the data set ten times over (5,690 rows, 1.2 MB): ~0.1-0.3 s here
TGI_IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
             "2.4.0-tgi2.4.0-gpu-py311-cu124-ubuntu22.04")


@dataclass
class DemoRun:
    """What a kind's steps get: where to write, the local AWS, the load test's length, the console."""

    out: Path
    name: str
    local: Any  # sme.local.aws.twin.LocalAws
    load_seconds: float
    console: Any  # sme.console.Env
    started: float = field(default_factory=time.time)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.local.url, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def summary(self) -> dict[str, Any]:
        try:
            return json.loads((self.out / "summary.json").read_text())
        except (OSError, ValueError):
            return {}


@dataclass(frozen=True)
class Tally:
    lines: list[str]  # the closing summary's lines for this kind
    record: dict[str, Any]  # the same numbers, and the twin's own, for demo.json


@dataclass(frozen=True)
class Kind:
    name: str
    prepare: Callable[[DemoRun], None]  # prints steps 2/6 and 3/6, writes sme.yaml and load.yaml
    tally: Callable[[DemoRun], Tally | None]  # None: the load test's and the watch's own numbers say it all
    twin: dict[str, float] = field(default_factory=lambda: dict(TWIN))  # LocalAws settings
    settings: Callable[[float], dict[str, str]] = lambda load_seconds: {}  # the twin's environment for the run
    files: tuple[str, ...] = ()  # result files worth naming at the end, beyond the common ones


def _model(run: DemoRun, payload_rows: int | None = None) -> Any:
    from sme.local.demo_model import build_demo_model

    model = build_demo_model(run.out, payload_rows=payload_rows)
    run.console.info(f"3/6 trained XGBoost on scikit-learn's breast-cancer data: {model.model_tar}")
    return model


def _write_experiment(run: DemoRun, kind: str, model_tar: Path, endpoint: str) -> None:
    """sme.yaml for the demo's XGBoost model with this kind's `endpoint:` section."""
    (run.out / "sme.yaml").write_text(f"""# written by `sme demo --kind {kind}` (on AWS: examples/{kind}/sme.yaml)
name: {run.name}
region: us-east-1
model:
  image: xgboost:1.7-1
  model_data: {model_tar}
  role: create
endpoint:{endpoint}""")


def shown_ms(block: dict | None, key: str) -> str:
    value = (block or {}).get(key)
    return "n/a" if value is None else f"{value:,.0f} ms"


# -- serverless ----------------------------------------------------------------------------------------------
def _serverless_shape(load_seconds: float) -> tuple[int, int]:
    """A burst from cold, an idle gap longer than runtimes stay warm, a second burst from cold."""
    burst = max(8, round(load_seconds * 0.3))
    return burst, max(8, round(load_seconds) - 2 * burst)


def serverless_settings(load_seconds: float) -> dict[str, str]:
    # AWS keeps an idle serverless runtime warm for minutes (undocumented); the demo's gap is seconds long
    _, idle = _serverless_shape(load_seconds)
    return {SERVERLESS_IDLE_ENV: f"{max(4.0, idle / 2):g}"}


def serverless_prepare(run: DemoRun) -> None:
    run.console.info("2/6 a serverless endpoint: no runtime until a request comes, at most 2 at once")
    model = _model(run)
    burst, idle = _serverless_shape(run.load_seconds)
    _write_experiment(run, "serverless", model.model_tar, """
  variants:
    - name: AllTraffic
      serverless: {memory_mb: 2048, max_concurrency: 2}
""")
    (run.out / "load.yaml").write_text(f"""# written by `sme demo --kind serverless`: a burst from cold, an idle gap, another burst
target:
  endpoint: {run.name}
payload: {{file: {model.payload_csv}, content_type: text/csv, split: lines}}
stages:
  - {{duration: {burst}s, rate: 20}}   # runtimes start (cold starts); beyond 2 at once is throttled
  - {{duration: {idle}s, rate: 0}}    # idle: the runtimes are stopped
  - {{duration: {burst}s, rate: 20}}   # cold again
""")


def _runtimes_started(run: DemoRun) -> int:
    """Runtimes the twin started during this run (each leaves a status file; an earlier demo's are older)."""
    workdir = run.local.endpoints.launcher.workdir
    return sum(1 for p in workdir.glob("instance-*.status.json") if p.stat().st_mtime >= run.started)


def _twin_throttles(run: DemoRun) -> int:
    return sum(v.throttles for ep in run.local.endpoints.live_endpoints() for v in ep.serverless.values())


def serverless_tally(run: DemoRun) -> Tally:
    s = run.summary()
    sl = s.get("serverless") or {}
    twin = {"runtimes_started": _runtimes_started(run), "throttles": _twin_throttles(run)}
    requests, throttles, invocations = s.get("requests", 0), sl.get("throttles", 0), sl.get("cloudwatch_invocations")
    adds_up = invocations is not None and requests == invocations + throttles
    setup = (sl.get("model_setup_time_ms") or {}).get("max")
    lines = [
        f"cold starts: {sl.get('cold_starts')} (CloudWatch ModelSetupTime; the twin started "
        f"{twin['runtimes_started']} runtimes), set-up up to {setup or 0:,.0f} ms",
        f"throttled: {throttles} (ThrottlingException beyond max_concurrency 2; the twin refused "
        f"{twin['throttles']})",
        f"requests: {requests} = {invocations} invocations (CloudWatch) + {throttles} throttled"
        + ("" if adds_up else "  (these do not add up: see summary.json `serverless`)"),
        f"latency p50 {shown_ms(s.get('latency_ms'), 'p50')}, p99 {shown_ms(s.get('latency_ms'), 'p99')} (cold starts "
        "included)",
    ]
    return Tally(lines, {"serverless": sl, "requests": requests, "twin": twin})


# -- asynchronous ---------------------------------------------------------------------------------------------
def async_prepare(run: DemoRun) -> None:
    run.client("s3").create_bucket(Bucket=RESULTS_BUCKET)
    run.console.info(f"2/6 an asynchronous endpoint: a queue, one request at a time, results in s3://{RESULTS_BUCKET}/")
    model = _model(run)
    rows = model.payload_csv.read_text()
    batch = run.out / "batch.csv"
    batch.write_text(rows * BATCH_COPIES)
    first, second = _async_shape(run.load_seconds)
    _write_experiment(run, "async", model.model_tar, f"""
  variants:
    - {{name: AllTraffic, instance_type: ml.m5.large, count: 1}}
  async:
    output: s3://{RESULTS_BUCKET}/out/
    failure: s3://{RESULTS_BUCKET}/failed/
    max_concurrent_per_instance: 1
""")
    (run.out / "load.yaml").write_text(f"""# written by `sme demo --kind async`: a backlog builds, then drains
target:
  endpoint: {run.name}
  timeout: 90s          # how long sme waits at the end for results still queued
payload: {{file: {batch}, content_type: text/csv, split: none}}   # one batch of {BATCH_COPIES * model.n_rows} rows
stages:
  - {{duration: {first}s, rate: 20}}    # a burst, more than the one instance scores: the queue fills
  - {{duration: {second}s, rate: 1}}    # a trickle: it drains
""")


def _async_shape(load_seconds: float) -> tuple[int, int]:
    """A short burst and a long trickle: the burst's size, not the machine's speed, makes the backlog (one
    instance scores 3 to 10 batches a second here), and the trickle leaves time to drain it."""
    first = max(4, round(load_seconds / 8))
    return first, max(20, round(load_seconds) - first)


def _objects(run: DemoRun, prefix: str) -> int:
    pages = run.client("s3").get_paginator("list_objects_v2").paginate(Bucket=RESULTS_BUCKET, Prefix=prefix)
    return sum(len(page.get("Contents", ())) for page in pages)


def _watched_max(out: Path, section: str, metric: str) -> float | None:
    values = []
    try:
        for line in (out / "watch.jsonl").read_text().splitlines():
            value = ((json.loads(line).get(section) or {}).get("metrics") or {}).get(metric)
            if value is not None:
                values.append(value)
    except (OSError, ValueError):
        return None
    return max(values, default=None)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def async_tally(run: DemoRun) -> Tally:
    s = run.summary()
    book = s.get("async") or {}
    twin = {"output_objects": _objects(run, "out/"), "failure_objects": _objects(run, "failed/")}
    backlog = _watched_max(run.out, "async_queue", "ApproximateBacklogSize")
    oldest = _watched_max(run.out, "async_queue", "ApproximateAgeOfOldestRequest")
    counted = sum(book.get(k, 0) for k in ("succeeded", "failed", "pending"))
    lines = [
        f"requests: {book.get('submitted')} submitted = {book.get('succeeded')} succeeded + {book.get('failed')} "
        f"failed + {book.get('pending')} still pending" + ("" if counted == book.get("submitted") else
                                                          "  (these do not add up: see summary.json `async`)"),
        f"results: {twin['output_objects']} objects in s3://{RESULTS_BUCKET}/out/, {twin['failure_objects']} in "
        f"s3://{RESULTS_BUCKET}/failed/ (they stay after teardown: they are yours)",
        f"backlog: up to {_number(backlog)} requests queued (ApproximateBacklogSize, averaged over a watch "
        f"interval); the oldest waited up to {_number(oldest)} s",
        f"end to end (submitted to result written): p50 {shown_ms(s.get('latency_ms'), 'p50')}, "
        f"p99 {shown_ms(s.get('latency_ms'), 'p99')}",
    ]
    return Tally(lines, {"async": book, "requests": s.get("requests"), "backlog_max": backlog, "twin": twin})

