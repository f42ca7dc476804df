"""Lambda execution environments for the local AWS's execute-api: warm runtime processes per function.

Each environment is a ``python -m sme.local.aws.lambda_runtime`` process running one function's code,
one event at a time, as Lambda does; up to MAX_ENVIRONMENTS per function, reused while the function's
code and configuration stay the same (a change is a cold start, as in Lambda).

An environment's pipes are written and read on the twin front's event loop (``Runtimes.invoke`` is a
coroutine): a warm invocation costs no hand-off to a thread and back, which cost the front door as much
CPU as the rest of API Gateway's work. Only a cold start (unzipping the code, starting the process) runs
in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
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


class _Replies(asyncio.Protocol):
    """A runtime's stdout: one JSON line per event; an empty line stands for "no reply" (it exited)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\n")
        if end >= 0 and self.waiter is not None and not self.waiter.done():
            line = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            self.waiter.set_result(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        _settle(self.waiter)


def _settle(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(b"")


class _Environment:
    def __init__(self, proc: subprocess.Popen, version: str, stdin: asyncio.WriteTransport, replies: _Replies):
        self.proc, self.version, self.stdin, self.replies = proc, version, stdin, replies

    async def call(self, event: dict, timeout_s: float) -> dict | None:
        """The runtime's reply, or None when it did not answer within timeout_s (then it is killed)."""
        loop = asyncio.get_running_loop()
        self.replies.waiter = waiter = loop.create_future()
        self.stdin.write(json.dumps(event).encode() + b"\n")
        timer = loop.call_later(timeout_s, _settle, waiter)
        try:
            line = await waiter
        finally:
            timer.cancel()
            self.replies.waiter = None
        if not line:
            self.kill()
            return None
        return json.loads(line)

    def alive(self) -> bool:
        return not self.replies.closed and self.proc.poll() is None

    def kill(self) -> None:
        """Safe from any thread: the pipes' transports see the process go and close themselves."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Runtimes:
    """Warm runtime processes per function, started on demand, at most MAX_ENVIRONMENTS each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # stop() comes from other threads than the front's loop
        self._idle: dict[str, list[_Environment]] = {}
        self._busy: dict[str, int] = {}
        self._waiting: dict[str, list[asyncio.Future]] = {}  # invocations queued for a busy function
        self._generation = 0  # bumped by stop(): environments busy across it are not reused
        self._code_dirs: dict[str, str] = {}
        self._root: str | None = None

    async def invoke(self, function_arn: str, event: dict,
                     server_url: str) -> tuple[int, Any, tuple[str, float, bool] | None]:
        """(status, the function's result or API Gateway's message, (function, duration ms, failed?) if it ran)."""
        fn = _find_function(function_arn)
        if fn is None:
            return 500, "Internal server error", None
        version = f"{fn.code_sha_256}:{json.dumps(fn.environment_vars, sort_keys=True)}:{fn.handler}"
        env, generation = await self._acquire(fn, version, server_url)
        limit = min(float(fn.timeout or 3), INTEGRATION_TIMEOUT_S)
        started = time.perf_counter()
        try:
            reply = await env.call(event, limit)
        except (OSError, ValueError):  # the runtime died mid-call, or answered garbage
            reply = None
            env.kill()
        finally:
            self._release(fn.function_arn, env, generation)
        ran = (fn.function_name, (time.perf_counter() - started) * 1000, reply is None or "error" in reply)
        if reply is None:
            if limit >= INTEGRATION_TIMEOUT_S:
                return 504, "Endpoint request timed out", ran
            return 502, "Internal server error", ran
        if "error" in reply:
            return 502, "Internal server error", ran
        return 200, reply.get("result"), ran

    async def _acquire(self, fn: Any, version: str, server_url: str) -> tuple[_Environment, int]:
        arn = fn.function_arn
        while True:
            with self._lock:
                generation = self._generation
                env, stale = self._take_idle(arn, version)
                freed = None
                if env is None and self._busy.get(arn, 0) >= MAX_ENVIRONMENTS:
                    freed = asyncio.get_running_loop().create_future()
                    self._waiting.setdefault(arn, []).append(freed)
                else:
                    self._busy[arn] = self._busy.get(arn, 0) + 1
            for old in stale:  # new code or configuration: a cold start, as in Lambda
                old.kill()
            if freed is None:
                break
            await freed
        if env is not None:
            return env, generation
        try:
            return await self._start(fn, version, server_url), generation
        except BaseException:
            self._release(arn, None, generation)
            raise

    def _take_idle(self, arn: str, version: str) -> tuple[_Environment | None, list[_Environment]]:
        """A warm environment of this version, if any, and the idle ones that can no longer serve."""
        idle, stale = self._idle.setdefault(arn, []), []
        while idle:
            env = idle.pop()
            if env.version == version and env.alive():
                return env, stale
            stale.append(env)
        return None, stale

    def _release(self, arn: str, env: _Environment | None, generation: int) -> None:
        with self._lock:
            self._busy[arn] = max(0, self._busy.get(arn, 0) - 1)
            if env is not None and env.alive():
                if generation == self._generation:
                    self._idle.setdefault(arn, []).append(env)
                else:
                    env.kill()
            waiting = self._waiting.get(arn) or []
            while waiting:
                freed = waiting.pop(0)
                if not freed.done():  # a waiter that gave up (cancelled) does not take the turn
                    freed.set_result(b"")
                    break

    async def _start(self, fn: Any, version: str, server_url: str) -> _Environment:
        loop = asyncio.get_running_loop()
        proc = await loop.run_in_executor(None, self._spawn, fn, server_url)
        try:
            replies = _Replies()
            await loop.connect_read_pipe(lambda: replies, proc.stdout)
            stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, proc.stdin)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return _Environment(proc, version, stdin, replies)

    def _spawn(self, fn: Any, server_url: str) -> subprocess.Popen:
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
        """Stop the idle environments now and the busy ones when their call ends (from any thread)."""
        with self._lock:
            idle = [env for envs in self._idle.values() for env in envs]
            self._idle.clear()
            self._generation += 1
            if self._root:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root, self._code_dirs = None, {}
        for env in idle:
            env.kill()


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
