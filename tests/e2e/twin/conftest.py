"""The twin as a user runs it: `sme local start` in a subprocess on 127.0.0.1, with one endpoint deployed.

The conformance tests talk to it only with clients sme did not write (botocore/boto3, the AWS CLI from
this environment, sagemaker-core) and raw HTTP, and assert what those clients see. One twin and one
endpoint serve the whole directory: starting them takes a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ENDPOINT = "conformance"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@dataclass(frozen=True)
class Twin:
    url: str
    env: dict  # a subprocess's environment: what `sme local start` printed, and no real AWS configuration
    endpoint: str
    payload_rows: tuple[str, ...]
    pid: int = 0  # the `sme local start` process

    def client(self, service: str, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="local",
                            aws_secret_access_key="local", config=Config(retries={"max_attempts": 1}, **config))

    def aws(self, *args: str) -> subprocess.CompletedProcess:
        """The AWS CLI installed in this environment (the `test` extra), not whichever `aws` is on PATH."""
        cli = Path(sys.executable).with_name("aws")
        return subprocess.run([str(cli), *args], env=self.env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def twin(tmp_path_factory):
    with running_twin(tmp_path_factory.mktemp("twin")) as (twin, model):
        _deploy(twin, model.model_tar)
        yield twin


@contextlib.contextmanager
def running_twin(work: Path, **environment: str):
    """`sme local start` in a subprocess (with these extra environment variables), and the demo model built."""
    from sme.local.demo_model import build_demo_model

    ready = work / "env.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | environment
    proc = subprocess.Popen([sys.executable, "-m", "sme", "local", "start", "--port", "0", "--ready-file", str(ready),
                             "--workdir", str(work / "w")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        model = build_demo_model(work / "model", payload_rows=5)
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None and time.time() < deadline, "sme local start did not come up"
            time.sleep(0.1)
        exports = dict(line[len("export "):].split("=", 1) for line in ready.read_text().splitlines())
        child = dict(env, **exports, AWS_CONFIG_FILE=os.environ["AWS_CONFIG_FILE"],
                     AWS_SHARED_CREDENTIALS_FILE=os.environ["AWS_SHARED_CREDENTIALS_FILE"],
                     SME_STATE_DIR=str(work / ".sme"))
        yield Twin(exports["AWS_ENDPOINT_URL"], child, ENDPOINT, tuple(model.payload_csv.read_text().splitlines()),
                   proc.pid), model
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _deploy(twin: Twin, model_tar: Path) -> None:
    s3, sm = twin.client("s3"), twin.client("sagemaker")
    s3.create_bucket(Bucket="conformance-models")
    s3.upload_file(str(model_tar), "conformance-models", "model.tar.gz")
    sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://conformance-models/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": ENDPOINT, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
