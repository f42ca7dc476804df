"""Serverless endpoints on the twin, as botocore sees them: start-up on demand, ModelSetupTime, throttling beyond
MaxConcurrency, idle runtimes stopped, provisioned concurrency kept warm (see sme.local.aws.serverless for the
AWS sources of each behaviour).

A twin of its own, with an idle timeout of 2 s so that "the first request after an idle period" takes seconds,
not minutes. Runtimes started are counted by the status file each one writes in the twin's workdir.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tests.e2e.twin.conftest import IMAGE, running_twin

IDLE_S = 2


@pytest.fixture(scope="module")
def serverless_twin(tmp_path_factory):
    work = tmp_path_factory.mktemp("serverless-twin")
    with running_twin(work, SME_SERVERLESS_IDLE_S=str(IDLE_S)) as (twin, model):
        s3 = twin.client("s3")
        s3.create_bucket(Bucket="serverless-models")
        s3.upload_file(str(model.model_tar), "serverless-models", "model.tar.gz")
        yield twin, work / "w"


def _deploy(twin, name: str, **serverless) -> None:
    sm = twin.client("sagemaker")
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://serverless-models/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": {"MemorySizeInMB": 2048, **serverless}}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def _runtimes_started(workdir, at_least: int = 0) -> int:
    """Runtimes that started (each writes its status file once up). The twin sends a runtime its first request
    as soon as it answers a ping, and the status file may follow a moment later: wait (bounded) for
    ``at_least`` of them, then count; a count above it still shows."""
    deadline = time.monotonic() + 10
    while (started := len(list(workdir.glob("instance-*.status.json")))) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return started


def _live_runtimes(workdir) -> set[str]:
    """The status files of the runtimes of this twin still running (a runtime's workers share its command line)."""
    live = set()
    for entry in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "sme.local.runtime" in cmd and "--status-file" in cmd:
            status = cmd[cmd.index("--status-file") + 1]
            if status.startswith(str(workdir)):
                live.add(status)
    return live


def _invoke(twin, name: str) -> float:
    started = time.perf_counter()
    reply = twin.client("sagemaker-runtime").invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                                            Body=twin.payload_rows[0])
    assert 0.0 <= float(reply["Body"].read()) <= 1.0
    return time.perf_counter() - started


def _statistic(twin, name: str, metric: str, statistic: str, settle) -> float | None:
    """The metric's statistic over the last ten minutes, polled until ``settle(value)`` holds (the twin
    publishes every 5 s) or 15 s have passed."""
    cloudwatch = twin.client("cloudwatch")
    deadline, value = time.time() + 15, None
    while time.time() < deadline:
        now = datetime.now(timezone.utc)
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1), Period=3600, Statistics=[statistic],
            Dimensions=[{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}],
        )["Datapoints"]
        value = points[0][statistic] if points else None
        if value is not None and settle(value):
            return value
        time.sleep(0.5)
    return value


def test_no_runtime_runs_until_the_first_request_which_pays_the_start_up_as_model_setup_time(serverless_twin):
    twin, workdir = serverless_twin
    before = _runtimes_started(workdir)
    _deploy(twin, "sl-cold", MaxConcurrency=2)
    description = twin.client("sagemaker").describe_endpoint(EndpointName="sl-cold")
    assert description["EndpointStatus"] == "InService"
    assert description["ProductionVariants"][0]["CurrentServerlessConfig"]["MaxConcurrency"] == 2
    assert _runtimes_started(workdir) == before, "an on-demand serverless endpoint starts no runtime"
    cold = _invoke(twin, "sl-cold")
    warm = _invoke(twin, "sl-cold")
    assert _runtimes_started(workdir, before + 1) == before + 1, "one request, one runtime; the second reuses it"
    assert cold > 0.3 and cold > 5 * warm, f"the first request waits for the runtime's start-up ({cold=}, {warm=})"
    setups = _statistic(twin, "sl-cold", "ModelSetupTime", "SampleCount", lambda n: n >= 1)
    assert setups == 1, "one start-up, one ModelSetupTime sample"
    setup_us = _statistic(twin, "sl-cold", "ModelSetupTime", "Maximum", lambda v: v > 0)
    assert 0.2 * 1e6 < setup_us < cold * 1e6, "ModelSetupTime is in microseconds and part of the first request"
    busiest = _statistic(twin, "sl-cold", "ServerlessConcurrentExecutionsUtilization", "Maximum", lambda v: v > 0)
    assert busiest == 0.5, "one execution at a time of MaxConcurrency 2"


def test_requests_beyond_max_concurrency_are_throttled_with_400_throttling_exception(serverless_twin):
    twin, workdir = serverless_twin
    _deploy(twin, "sl-throttle", MaxConcurrency=1)
    runtime = twin.client("sagemaker-runtime")

    def call(_):
        try:
            runtime.invoke_endpoint(EndpointName="sl-throttle", ContentType="text/csv", Body=twin.payload_rows[0])
            return "ok"
        except ClientError as exc:
            error = exc.response
            return (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"])

    with ThreadPoolExecutor(4) as pool:  # the first starts the one runtime allowed; the others come meanwhile
        outcomes = list(pool.map(call, range(4)))
    assert outcomes.count("ok") >= 1
    throttled = [o for o in outcomes if o != "ok"]
    assert throttled and set(throttled) == {(400, "ThrottlingException")}, outcomes
    invocations = _statistic(twin, "sl-throttle", "Invocations", "Sum", lambda n: n >= outcomes.count("ok"))
    assert invocations == outcomes.count("ok"), "a throttled request never reaches the model: no Invocation"


def test_a_runtime_idle_past_the_timeout_is_stopped_and_the_next_request_starts_another(serverless_twin):
    twin, workdir = serverless_twin
    _deploy(twin, "sl-idle", MaxConcurrency=1)
    before, live_before = _runtimes_started(workdir), _live_runtimes(workdir)
    _invoke(twin, "sl-idle")
    ours = _live_runtimes(workdir) - live_before  # (the module's other endpoints keep or stop theirs meanwhile)
    assert len(ours) == 1, "the first request started one runtime"
    time.sleep(IDLE_S)
    deadline = time.monotonic() + 30  # the control loop's tick comes late on a busy machine
    while ours & _live_runtimes(workdir):
        assert time.monotonic() < deadline, "the idle runtime was not stopped"
        time.sleep(0.2)
    again = _invoke(twin, "sl-idle")
    assert _runtimes_started(workdir, before + 2) == before + 2, "the idle runtime was stopped; a new one served"
    assert again > 0.3, "the first request after the idle period pays a start-up again"
    assert _statistic(twin, "sl-idle", "ModelSetupTime", "SampleCount", lambda n: n >= 2) == 2


def test_provisioned_concurrency_is_warm_before_any_request_and_spills_over_beyond_it(serverless_twin):
    twin, workdir = serverless_twin
    before = _runtimes_started(workdir)
    _deploy(twin, "sl-provisioned", MaxConcurrency=3, ProvisionedConcurrency=1)
    # InService once the runtime answers its ping; it writes its status file a moment after (a busy machine)
    assert _runtimes_started(workdir, before + 1) == before + 1, "the provisioned runtime starts with the endpoint"
    warm = _invoke(twin, "sl-provisioned")
    assert warm < 0.3, f"a provisioned runtime answers without a start-up ({warm=})"
    name = "sl-provisioned"
    runtime, slow = twin.client("sagemaker-runtime"), "\n".join([twin.payload_rows[0]] * 20000)  # ~0.1 s each
    together = threading.Barrier(2)

    def slow_call(_):
        together.wait()
        return runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=slow)["Body"].read()

    with ThreadPoolExecutor(2) as pool:  # two at once: one on the provisioned runtime, one spills over
        assert all(len(r.splitlines()) == 20000 for r in pool.map(slow_call, range(2)))
    served = _statistic(twin, name, "ServerlessProvisionedConcurrencyInvocations", "Sum", lambda n: n >= 2)
    spilled = _statistic(twin, name, "ServerlessProvisionedConcurrencySpilloverInvocations", "Sum", lambda n: n >= 1)
    assert (served, spilled) == (2, 1), "3 requests: 2 on provisioned concurrency, 1 spilled over"
    assert _statistic(twin, name, "ModelSetupTime", "SampleCount", lambda n: n >= 1) == 1, "only the spill-over"
    assert _statistic(twin, name, "ServerlessProvisionedConcurrencyUtilization", "Maximum", lambda v: v > 0) == 1.0
