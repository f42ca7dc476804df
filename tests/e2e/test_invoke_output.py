"""`sme invoke`'s reply: byte for byte when stdout is piped or redirected (a body may be binary); on a
terminal it ends with a newline, so the status line on stderr does not run into it. And with no
credentials, the real CLI's error says to export what `sme local start` printed."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import urllib.request

from tests.conftest import ACCOUNT

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def endpoint_answering(boto, moto, *bodies: str) -> None:
    """An endpoint `churn` whose next replies are ``bodies`` (moto's queued InvokeEndpoint results)."""
    sm = boto("sagemaker")
    sm.create_model(ModelName="m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/R",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="c")
    results = {"results": [{"Body": b, "ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic"}
                           for b in bodies], "region": "us-east-1"}
    urllib.request.urlopen(urllib.request.Request(f"{moto.url}/moto-api/static/sagemaker/endpoint-results",
                                                  data=json.dumps(results).encode(), method="POST"), timeout=10)


def invoke_on_a_terminal(aws_env, cwd, body: str) -> tuple[bytes, str]:
    """Run `sme invoke` with stdout on a pseudo-terminal; returns (what the terminal got, stderr)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sme", "invoke", "--name", "churn", "--body", body,
                                 "--via", "endpoint"], env=aws_env, cwd=cwd, stdout=slave,
                                stderr=subprocess.PIPE, text=True)
        os.close(slave)
        _, err = proc.communicate(timeout=60)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side is closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0, err
    return shown, err


def test_piped_stdout_is_the_body_byte_for_byte(boto, moto, aws_env, tmp_path):
    endpoint_answering(boto, moto, "0.93")
    result = subprocess.run([sys.executable, "-m", "sme", "invoke", "--name", "churn", "--body", "1,2,3",
                             "--via", "endpoint"], env=aws_env, cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"0.93", "a pipe gets exactly the body: no newline added"


def test_on_a_terminal_the_reply_ends_with_a_newline(boto, moto, aws_env, tmp_path):
    endpoint_answering(boto, moto, "0.93", "0.1\n0.2\n")
    # moto answers the queued replies in order, one per distinct request body
    shown, err = invoke_on_a_terminal(aws_env, tmp_path, "1,2,3")
    assert shown == b"0.93\r\n", f"the terminal should show the reply on its own line: {shown!r}"
    assert "200 text/csv 4 bytes" in err, "the byte count is the body's, not the newline's"
    shown, _ = invoke_on_a_terminal(aws_env, tmp_path, "4,5,6")
    assert shown == b"0.1\r\n0.2\r\n", f"a body that ends with a newline gets no second one: {shown!r}"


def test_no_credentials_with_a_local_endpoint_says_what_to_export(aws_env, tmp_path):
    env = {k: v for k, v in aws_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                          "AWS_SESSION_TOKEN")}
    result = subprocess.run([sys.executable, "-m", "sme", "watch", "--endpoint", "churn", "--once"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "no AWS credentials found" in result.stderr
    assert "AWS_ENDPOINT_URL points at a local AWS" in result.stderr and "sme local start" in result.stderr
    assert "Traceback" not in result.stderr
