"""Start and watch local model runtimes from Python: one OS process per endpoint instance.

This is the API the local AWS builds on::

    from sme.local.runtime import RuntimeFailed, start_runtime

    runtime = start_runtime(Path("model.tar.gz"), port=0, workers=1, env=model_environment)
    try:
        runtime.wait_ready(timeout=60)   # Creating -> InService
    except RuntimeFailed as e:           # -> Failed, with e.reason as the FailureReason
        ...
    runtime.url                          # http://127.0.0.1:<port>; POST /invocations, GET /ping
    runtime.alive()                      # False once the process has exited
    runtime.stop()                       # SIGTERM, then SIGKILL after a grace period

- `start_runtime(model_tar, port=0, workers=None, env=None, *, host="127.0.0.1", threads=1,
  log_path=None) -> RuntimeProcess` returns at once. `port=0` lets the runtime pick a free port
  (known after `wait_ready`, no race with other processes); `port=None` takes SAGEMAKER_BIND_TO_PORT
  from `env`, else 8080; `workers=None` takes SAGEMAKER_MODEL_SERVER_WORKERS from `env`, else one
  worker per CPU (the container's default).
  `env` is laid over this process's environment: pass the model's Environment (SAGEMAKER_PROGRAM,
  SAGEMAKER_MODEL_SERVER_TIMEOUT, ...) there.
  The runtime's stdout and stderr go to `log_path` (a file in the runtime's own temporary directory
  unless given): that is the instance's log stream.
- `RuntimeProcess.wait_ready(timeout)` returns once every worker has its model and /ping answers, raises `RuntimeFailed` (with
  `.reason`) if the model cannot be served, and `sme.errors.WaitTimeout` if neither happens in time
  (the process is left running: stop it).
- After `wait_ready`, `runtime.ready_info` is the runtime's status document: pid, port, workers,
  convention ("xgboost" or "inference-script"), requirements (from code/requirements.txt, reported
  and never installed) and model_dir.
- A runtime started here stops by itself if the process that started it dies (`--exit-with-parent`).
- Each response to /invocations carries `X-Model-Latency-Us`, the model's share of the request, for
  the ModelLatency metric.

Starting `python -m sme.local.runtime --model-data M --port P --status-file F` directly works too: F
holds `{"state": "failed", "reason": ...}` (and the process exits non-zero) or `{"state": "ready",
"pid": ..., "port": ..., ...}` once /ping answers.

Only the standard library is imported here; the runtime's heavy imports happen in the child.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sme.errors import DeployFailed, WaitTimeout
from sme.local.runtime.status import FAILED, READY, read_status

STOP_GRACE_SECONDS = 10.0


class RuntimeFailed(DeployFailed):
    """The runtime could not serve the model; `reason` is what the endpoint's FailureReason shows."""

    def __init__(self, reason: str):
        super().__init__(f"model runtime failed: {reason}")
        self.reason = reason


class RuntimeProcess:
    """One running runtime (gunicorn master plus its workers)."""

    def __init__(self, popen: subprocess.Popen, port: int, host: str, workdir: Path, log_path: Path):
        self._popen = popen
        self.port = port  # 0 until wait_ready has learnt the port the runtime chose
        self.host = host
        self.workdir = workdir
        self.status_file = workdir / "status.json"
        self.log_path = log_path
        self.ready_info: dict | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self._popen.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = read_status(self.status_file) or {}
            if status.get("state") == READY:
                self.ready_info = status
                self.port = int(status["port"])
                return
            if status.get("state") == FAILED:
                raise RuntimeFailed(status.get("reason") or "unknown reason")
            if not self.alive():
                status = read_status(self.status_file) or {}  # it may have written its reason as it exited
                if status.get("state") == FAILED:
                    raise RuntimeFailed(status.get("reason") or "unknown reason")
                raise RuntimeFailed(f"runtime exited with status {self._popen.returncode}: {self.log_tail()}")
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"model runtime (pid {self.pid}) did not answer /ping within {timeout:g} s",
                                  hint=f"see its log at {self.log_path}")
            time.sleep(0.05)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """Stop the runtime and its workers; returns its exit status. Safe to call twice."""
        if self.alive():
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                # The process group holds the master and its workers; nothing else.
                os.killpg(self._popen.pid, signal.SIGKILL)
                self._popen.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self._popen.returncode

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line for line in text.strip().splitlines()[-lines:])


def start_runtime(model_tar: Path | None, port: int | None = 0, workers: int | None = None, env: dict | None = None, *,
                  host: str = "127.0.0.1", threads: int = 1, log_path: Path | None = None) -> RuntimeProcess:
    """Start `python -m sme.local.runtime` for `model_tar`; returns without waiting for it."""
    workdir = Path(tempfile.mkdtemp(prefix="sme-runtime-"))
    log_path = log_path or workdir / "runtime.log"
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    model_data = ["--model-data", str(Path(model_tar).resolve())] if model_tar is not None else []
    command = [sys.executable, "-m", "sme.local.runtime", *model_data, "--host", host, "--threads", str(threads),
               "--status-file", str(workdir / "status.json"), "--exit-with-parent",
               "--model-dir", str(workdir / "model")]  # inside workdir, so stop() removes it even after SIGKILL
    if port is not None:
        command += ["--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(command, env=child_env, stdin=subprocess.DEVNULL, stdout=log_file,
                                 stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    return RuntimeProcess(popen, port or 0, host, workdir, Path(log_path))
