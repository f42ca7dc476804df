"""With no credentials, the error says how to reach the local AWS when one is running: the user started
`sme local start` in another shell and did not export what it printed."""

from __future__ import annotations

import socket

import pytest

from sme.aws import local_aws_answers, no_credentials


@pytest.fixture
def listener():
    """Something answering on a loopback port, as `sme local start` does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port  # bound then released: nothing listens there


def test_a_running_local_aws_is_named_with_what_to_export(monkeypatch, listener):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    err = no_credentials(port=listener)
    assert err.message == "no AWS credentials found"
    assert f"a local AWS answers on http://127.0.0.1:{listener}" in err.hint, err.hint
    assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{listener}" in err.hint and "AWS_ACCESS_KEY_ID" in err.hint
    assert "aws configure" in err.hint, "AWS itself stays an option"


def test_without_a_local_aws_the_hint_says_how_to_start_one(monkeypatch, closed_port):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert not local_aws_answers(closed_port)
    hint = no_credentials(port=closed_port).hint
    assert "aws configure" in hint and "run `sme local start` and export what it prints" in hint, hint
    assert "answers on" not in hint


def test_an_endpoint_url_on_loopback_needs_only_the_rest_of_the_exports(monkeypatch, closed_port):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    hint = no_credentials(port=closed_port).hint
    assert hint.startswith("AWS_ENDPOINT_URL points at a local AWS (http://127.0.0.1:4566): export the rest"), hint
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://vpce-123.sagemaker.eu-west-1.vpce.amazonaws.com")
    assert "local AWS (" not in no_credentials(port=closed_port).hint
