"""A twin killed outright (SIGKILL, the OOM killer) leaves none of its endpoints' instances running.

Instances run in sessions of their own (so a Ctrl-C in the terminal reaches the twin, which stops them in
order); when the twin dies without stopping them, each notices that its parent is gone and stops."""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.twin.conftest import _deploy, running_twin


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()  # [state, ppid, ...]
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (_stat(int(e)) or ["Z", "0"])[1] == str(pid)]


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def test_a_sigkilled_twin_leaves_no_instance_running(tmp_path):
    with running_twin(tmp_path) as (twin, model):
        _deploy(twin, model.model_tar)
        instances = _children(twin.pid)
        assert instances, "the endpoint's instance runs as a child of the twin"
        os.kill(twin.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in instances) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in instances if _alive(p)], "instances outlived their twin"
