"""Shared fixtures: a moto server on loopback (extended by sme), a VPC, and the real `sme` as a subprocess.

Tests never reach AWS: every AWS variable that could point at a real account is removed, credentials
are fake, and all clients talk to the moto server on 127.0.0.1 through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SCRUB = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
         "AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_SECURITY_TOKEN")
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True, scope="session")
def _no_real_aws(tmp_path_factory):
    """No test can reach a real account: no profile, fake credentials, empty AWS config files."""
    saved = dict(os.environ)
    for key in SCRUB:
        os.environ.pop(key, None)
    empty = tmp_path_factory.mktemp("awsconfig") / "none"
    empty.write_text("")
    os.environ.update(FAKE_AWS)
    os.environ["AWS_CONFIG_FILE"] = str(empty)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["MOTO_ALLOW_NONEXISTENT_REGION"] = "false"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_server():
    """A moto server (with sme's SageMaker extensions) on 127.0.0.1, shared by the session."""
    from sme.local.aws.server import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server):
    """The server, reset to empty before the test."""
    moto_server.reset()
    yield moto_server
    moto_server.reset()


@pytest.fixture
def aws_env(moto, tmp_path):
    """Environment for a subprocess `sme`: the moto server, fake credentials, no profile, its own state dir."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(FAKE_AWS)
    env["AWS_ENDPOINT_URL"] = moto.url
    env["AWS_CONFIG_FILE"] = os.environ["AWS_CONFIG_FILE"]
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
    env["SME_STATE_DIR"] = str(tmp_path / ".sme")
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def boto(moto):
    """In-process boto3 clients against the same moto server."""
    import boto3

    def client(service: str):
        return boto3.client(service, endpoint_url=moto.url, region_name="us-east-1")

    return client


@pytest.fixture
def vpc(boto, moto):
    """A VPC with three subnets in three AZs and a security group (its calls are not counted)."""
    ec2 = boto("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = []
    for i, az in enumerate(("us-east-1a", "us-east-1b", "us-east-1c")):
        subnets.append(ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"])
    sg = ec2.create_security_group(GroupName="sme-test", Description="sme test", VpcId=vpc_id)["GroupId"]
    # the execution role the tests' deploys name: preflight checks that it exists and trusts SageMaker
    boto("iam").create_role(RoleName="SageMakerRole", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    moto.recorder.calls.clear()
    return {"vpc": vpc_id, "subnets": subnets, "security_group": sg}


def run_sme(*args: str, env: dict, cwd: Path | None = None, timeout: float = 120, input: str | None = None):
    """Run the real CLI as a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "sme", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=input)


@pytest.fixture
def sme(aws_env, tmp_path):
    def run(*args: str, **kw):
        kw.setdefault("env", aws_env)
        kw.setdefault("cwd", tmp_path)
        return run_sme(*args, **kw)

    return run


# Run from a background job (`pytest &` in a script), this process starts with SIGINT ignored, and its
# subprocesses would inherit that: the Ctrl-C tests then hang. Restore Python's own handler.
import signal as _signal  # noqa: E402

_signal.signal(_signal.SIGINT, _signal.default_int_handler)
