"""The command-line boundary: start-up cost, bad input, exit statuses. The CLI runs as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ACCOUNT
from tests.e2e.test_deploy import model_tar  # noqa: F401  (fixture)

HEAVY = ("boto3", "botocore", "locust", "gevent", "moto", "xgboost", "sagemaker", "rich", "yaml", "jsonschema")


def test_help_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "sme", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), f"`sme --help` imported {sorted(imported & set(HEAVY))}"
    for command in ("deploy", "status", "teardown"):
        assert command in out.stdout


@pytest.fixture
def base_args(vpc, model_tar):
    model = model_tar
    return ["deploy", "--name", "churn", "--image", "xgboost:1.7-1", "--model-data", str(model),
            "--instance-type", "ml.m5.large", "--role", f"arn:aws:iam::{ACCOUNT}:role/R",
            "--subnet", vpc["subnets"][0], "--security-group", vpc["security_group"], "--dry-run"]


def one_clear_line(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


@pytest.mark.parametrize("replace, words", [
    (("--role", "arn:aws:iam::123:role/R"), ["model.role", "arn:aws:iam::123456789012:role/"]),
    (("--subnet", "subnet-zzz"), ["network.subnets[0]", "subnet-0a1b2c3d"]),
    (("--instance-type", "m5.large"), ["instance_type", "ml.m5.large"]),
    (("--name", "churn_1"), ["name", "letters, digits and hyphens"]),
    (("--model-data", "/nonexistent/model.tar.gz"), ["model.model_data", "s3://"]),
    (("--image", "nosuchframework:1.0"), ["model.image", "no framework named"]),
])
def test_bad_flags_give_one_clear_line(sme, base_args, replace, words):
    args = list(base_args)
    args[args.index(replace[0]) + 1] = replace[1]
    one_clear_line(sme(*args), *words)


def write(tmp_path, text):
    path = tmp_path / "sme.yaml"
    path.write_text(text)
    return str(path)


GOOD = """
name: churn
region: us-east-1
model: {image: xgboost:1.7-1, model_data: s3://bucket/model.tar.gz, role: create}
endpoint:
  variants: [{instance_type: ml.m5.large, count: 1}]
"""


@pytest.mark.parametrize("text, words", [
    (GOOD.replace("name: churn\n", ""), ["sme.yaml: name: is required", "--name"]),
    (GOOD + "colour: blue\n", ["sme.yaml: colour: unknown field", "valid fields here"]),
    (GOOD.replace("count: 1", "count: two"), ["endpoint.variants[0].count", "expected an integer", "two"]),
    (GOOD.replace("count: 1", "count: 1, size: 3"), ["endpoint.variants[0].size: unknown field"]),
    (GOOD.replace("role: create", "role: admin"), ["model.role", "create"]),
    ("name: [unclosed\n", ["sme.yaml: not valid YAML at line"]),
    ("- just\n- a list\n", ["sme.yaml", "expected a mapping"]),
    (GOOD.replace("s3://bucket/model.tar.gz", "s3://"), ["model.model_data"]),
])
def test_bad_experiment_file_gives_one_clear_line(sme, tmp_path, text, words):
    one_clear_line(sme("deploy", "-c", write(tmp_path, text), "--dry-run"), *words)


def test_missing_config_file(sme, tmp_path):
    one_clear_line(sme("deploy", "-c", str(tmp_path / "nope.yaml")), "nope.yaml", "no such file")


def test_missing_region_is_a_user_error(sme, aws_env, tmp_path):
    env = {k: v for k, v in aws_env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    one_clear_line(sme("status", "--name", "churn", env=env), "region")


def test_aws_error_names_operation_and_resource(sme, aws_env):
    env = dict(aws_env, AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens on the discard port
    result = sme("status", "--name", "churn", env=env)
    assert result.returncode == 1, result.stderr
    assert "DescribeEndpoint" in result.stderr and "churn" in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_shows_traceback(sme, aws_env):
    env = dict(aws_env, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    result = sme("-v", "status", "--name", "churn", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr and "EndpointConnectionError" in result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "DescribeEndpoint" in last and "churn" in last, "the readable message still ends the output"


def test_readme_experiment_file_is_valid(tmp_path, model_tar, monkeypatch):
    """The experiment file documented in README.md passes the schema as written (its model_data is
    ./model.tar.gz: a real archive in the current directory)."""
    import re
    from pathlib import Path

    from sme.config import Overrides, load_experiment

    readme = Path(__file__).resolve().parents[2] / "README.md"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(), re.S)
    experiment = next(b for b in blocks if b.startswith("name:"))
    path = tmp_path / "sme.yaml"
    path.write_text(experiment)
    monkeypatch.chdir(model_tar.parent)
    exp = load_experiment(str(path), Overrides())
    assert exp.name == "churn" and exp.variants[0].count == 2 and len(exp.network.subnets) == 3
