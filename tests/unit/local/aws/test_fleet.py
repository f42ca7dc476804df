"""The twin's instances: what a model's process gets from the machine it runs on, and where files land."""

from __future__ import annotations

import boto3
from moto import mock_aws

from sme.local.aws.fleet import Launcher, container_environment


def test_a_model_gets_what_sagemaker_gives_a_container_not_the_users_shell(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-users-own-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-users-own-token")
    monkeypatch.setenv("AWS_PROFILE", "prod-admin")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    env = container_environment({"SAGEMAKER_PROGRAM": "inference.py"}, "img:1", "eu-west-1", tmp_path / "home")
    assert "the-users-own-secret" not in env.values() and "ghp_secret" not in env.values()
    assert not {"AWS_SESSION_TOKEN", "AWS_PROFILE", "GITHUB_TOKEN"} & set(env)
    assert env["AWS_REGION"] == "eu-west-1" and env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SME_CONTAINER_IMAGE"] == "img:1" and env["HOME"] == str(tmp_path / "home")


def test_an_s3_key_with_dot_dots_is_fetched_inside_the_workdir(tmp_path):
    work = tmp_path / "work"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="../../../escaped.tar.gz", Body=b"model bytes")
        path = Launcher(work).artifact("123456789012", "s3://models/../../../escaped.tar.gz")
    assert path.resolve().is_relative_to(work.resolve()), path
    assert path.read_bytes() == b"model bytes"
    assert [p for p in tmp_path.rglob("*") if not p.resolve().is_relative_to(work.resolve())] == []
