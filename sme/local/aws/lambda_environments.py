"""Lambda execution environments for the local AWS's execute-api: warm runtime processes per function.

Each environment is a ``python -m sme.local.aws.lambda_runtime`` process running one function's code,
one event at a time, as Lambda does; up to MAX_ENVIRONMENTS per function, reused while the function's
code and configuration stay the same (a change is a cold start, as in Lambda).
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from typing import Any

MAX_ENVIRONMENTS = 8
INTEGRATION_TIMEOUT_S = 29.0  # API Gateway's own limit on an integration


class _Environment:
    def __init__(self, proc: subprocess.Popen, version: str):
        self.proc, self.version = proc, version

    def call(self, event: dict, timeout_s: float) -> dict | None:
        """The runtime's reply, or None when it did not answer within timeout_s (then it is killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(event) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.kill()
            return None
        return json.loads(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Runtimes:
    """Warm runtime processes per function, started on demand, at most MAX_ENVIRONMENTS each."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: dict[str, list[_Environment]] = {}
        self._busy: dict[str, int] = {}
        self._code_dirs: dict[str, str] = {}
        self._root: str | None = None

    def invoke(self, function_arn: str, event: dict,
               server_url: str) -> tuple[int, Any, tuple[str, float, bool] | None]:
        """(status, the function's result or API Gateway's message, (function, duration ms, failed?) if it ran)."""
        fn = _find_function(function_arn)
        if fn is None:
            return 500, "Internal server error", None
        version = f"{fn.code_sha_256}:{json.dumps(fn.environment_vars, sort_keys=True)}:{fn.handler}"
        env = self._acquire(fn, version, server_url)
        limit = min(float(fn.timeout or 3), INTEGRATION_TIMEOUT_S)
        started = time.perf_counter()
        try:
            reply = env.call(event, limit)
        except (OSError, ValueError):  # the runtime died mid-call, or answered garbage
            reply = None
            env.kill()
        finally:
            self._release(fn.function_arn, env)
        ran = (fn.function_name, (time.perf_counter() - started) * 1000, reply is None or "error" in reply)
        if reply is None:
            if limit >= INTEGRATION_TIMEOUT_S:
                return 504, "Endpoint request timed out", ran
            return 502, "Internal server error", ran
        if "error" in reply:
            return 502, "Internal server error", ran
        return 200, reply.get("result"), ran

    def _acquire(self, fn: Any, version: str, server_url: str) -> _Environment:
        arn = fn.function_arn
        with self._lock:
            while True:
                idle = self._idle.setdefault(arn, [])
                while idle:
                    env = idle.pop()
                    if env.version == version and env.proc.poll() is None:
                        self._busy[arn] = self._busy.get(arn, 0) + 1
                        return env
                    env.kill()  # new code or configuration: a cold start, as in Lambda
                if self._busy.get(arn, 0) < MAX_ENVIRONMENTS:
                    self._busy[arn] = self._busy.get(arn, 0) + 1
                    break
                self._lock.wait()
        try:
            return _Environment(self._start(fn, server_url), version)
        except Exception:
            with self._lock:
                self._busy[arn] -= 1
                self._lock.notify()
            raise

    def _release(self, arn: str, env: _Environment) -> None:
        with self._lock:
            self._busy[arn] -= 1
            if env.proc.poll() is None:
                self._idle.setdefault(arn, []).append(env)
            self._lock.notify()

    def _start(self, fn: Any, server_url: str) -> subprocess.Popen:
        code_dir = self._code_dir(fn)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
        env.update({"AWS_ENDPOINT_URL": server_url, "AWS_ACCESS_KEY_ID": "sme-local-lambda",
                    "AWS_SECRET_ACCESS_KEY": "sme-local-lambda", "AWS_REGION": fn.region,
                    "AWS_DEFAULT_REGION": fn.region, "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size), "PYTHONUNBUFFERED": "1"})
        return subprocess.Popen([sys.executable, "-m", "sme.local.aws.lambda_runtime", code_dir, fn.handler or ""],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)

    def _code_dir(self, fn: Any) -> str:
        with self._lock:
            if fn.code_sha_256 not in self._code_dirs:
                if self._root is None:
                    self._root = tempfile.mkdtemp(prefix="sme-local-lambda-")
                target = os.path.join(self._root, str(len(self._code_dirs)))
                with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as zf:
                    zf.extractall(target)
                self._code_dirs[fn.code_sha_256] = target
            return self._code_dirs[fn.code_sha_256]

    def stop(self) -> None:
        with self._lock:
            for envs in self._idle.values():
                for env in envs:
                    env.kill()
            self._idle.clear()
            if self._root:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root, self._code_dirs = None, {}


def _find_function(arn: str) -> Any:
    from moto.awslambda.models import lambda_backends

    parts = arn.split(":")
    if len(parts) < 7:
        return None
    try:
        return lambda_backends[parts[4]][parts[3]].get_function(parts[6])
    except Exception:  # noqa: BLE001 - a missing function is API Gateway's 500, not ours
        return None


RUNTIMES = Runtimes()
