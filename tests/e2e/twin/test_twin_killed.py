"""A twin killed outright (SIGKILL, the OOM killer) leaves none of its endpoints' instances running.

Instances run in sessions of their own (so a Ctrl-C in the terminal reaches the twin, which stops them in
order); when the twin dies without stopping them, each notices that its parent is gone and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.e2e.twin.conftest import ENDPOINT, Twin, _deploy


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
    from sme.local.demo_model import build_demo_model

    ready = tmp_path / "env.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([sys.executable, "-m", "sme", "local", "start", "--port", "0", "--ready-file", str(ready),
                             "--workdir", str(tmp_path / "w")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        model = build_demo_model(tmp_path / "model", payload_rows=5)
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None and time.time() < deadline, "sme local start did not come up"
            time.sleep(0.1)
        exports = dict(line[len("export "):].split("=", 1) for line in ready.read_text().splitlines())
        _deploy(Twin(exports["AWS_ENDPOINT_URL"], env, ENDPOINT, ()), model.model_tar)
        instances = _children(proc.pid)
        assert instances, "the endpoint's instance runs as a child of the twin"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in instances) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in instances if _alive(p)], "instances outlived their twin"
    finally:
        if proc.poll() is None:
            proc.kill()
