"""Stopping the local AWS undoes every step of its start even when one step fails: no InvokeEndpoint is
forwarded to runtimes that are gone, no port is left serving, and the failure is still raised."""

from __future__ import annotations

import socket

import pytest


def test_a_failing_step_of_stop_still_leaves_nothing_forwarding_or_serving(tmp_path, monkeypatch):
    from sme.local.aws import execute_api
    from sme.local.aws.patches import sagemaker_runtime
    from sme.local.aws.patches.sagemaker import LIFECYCLE
    from sme.local.aws.twin import LocalAws

    aws = LocalAws(workdir=tmp_path).start()
    port = aws.server.port
    assert sagemaker_runtime.forwarding() is aws.endpoints and LIFECYCLE.hooks is aws.endpoints

    def broken() -> None:
        raise RuntimeError("a runtime would not stop")

    monkeypatch.setattr(aws.endpoints, "stop_all", broken)
    with pytest.raises(RuntimeError, match="would not stop"):
        aws.stop()
    assert sagemaker_runtime.forwarding() is None and LIFECYCLE.hooks is None
    assert aws.metrics.front_door.observe not in execute_api.OBSERVERS
    assert aws._loop is not None and not aws._loop.is_alive()
    with pytest.raises(OSError):  # nothing listens on the twin's port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
