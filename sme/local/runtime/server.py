"""SageMaker's container contract as a small WSGI app, served by gunicorn.

`GET /ping` answers 200 once the worker has its model; the status file says ready once every worker
has loaded its model and /ping answers. `POST /invocations` answers with the model's
predictions, 4xx with the reason for a bad request and 500 with the reason (logged with its traceback)
when the model raises; the worker keeps serving. Every invocation response carries
`X-Model-Latency-Us`: microseconds spent decoding, predicting and encoding, which is what SageMaker
reports as ModelLatency.

An invocation that runs past the model server timeout (SAGEMAKER_MODEL_SERVER_TIMEOUT, 60 s) ends its
worker: the client's connection closes and gunicorn starts a fresh worker. Loading the model is not
bounded here; whoever waits for readiness bounds it (`RuntimeProcess.wait_ready(timeout)`).

gunicorn runs `workers` processes of the gthread kind (keep-alive connections; one thread each unless
told otherwise), and each worker loads its own model (see model_loader). If a worker cannot load the
model it records the reason in the status file and exits with gunicorn's boot-error code, which stops the
whole server.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sme.local.runtime.artifact import Artifact, ModelLoadError
from sme.local.runtime.codecs import RequestError
from sme.local.runtime.status import FAILED, READY, write_status

log = logging.getLogger("sme.runtime")
REASONS = {code: f"{code} {http.client.responses.get(code, '')}" for code in range(200, 600)}
WORKER_BOOT_ERROR = 3  # gunicorn's arbiter halts the server when a worker exits with this


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    timeout: int = 60  # seconds an invocation may take before its worker is restarted
    max_body: int = 6 * 1024 * 1024  # SageMaker's real-time payload limit
    status_file: Path | None = None
    parent_pid: int | None = None  # stop when this process is gone


def make_app(model, max_body: int, timeout: float | None = None) -> Callable:
    """The WSGI app for one loaded model; with `timeout`, a request running longer ends the worker."""
    invoke = model.invoke
    generate = getattr(model, "invoke_request", None)
    clock = time.perf_counter_ns
    in_flight: dict[int, int] = {}  # thread id -> start (ns) of the invocation it is running
    if timeout:
        threading.Thread(target=_watchdog, args=(in_flight, timeout), name="sme-timeout", daemon=True).start()
    get_ident = threading.get_ident

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/invocations":
            if environ["REQUEST_METHOD"] != "POST":
                return _reply(start_response, 405, b"use POST for /invocations")
            try:
                body = _read_body(environ, max_body)
            except RequestError as e:
                return _reply(start_response, e.status, e.reason.encode())
            started = in_flight[get_ident()] = clock()
            try:
                if generate is not None:  # text generation: its request id rides in the custom attributes
                    content, content_type = generate(body, environ.get("CONTENT_TYPE"), _request_id(environ))
                else:
                    content, content_type = invoke(body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"))
                status = 200
            except RequestError as e:
                content, content_type, status = e.reason.encode(), getattr(e, "content_type", "text/plain"), e.status
            except Exception as e:  # the model's failure: report it, keep the worker
                log.exception("model raised while handling /invocations")
                content, content_type = f"model error: {type(e).__name__}: {e}".encode(), "text/plain"
                status = _status_of(e)
            finally:
                in_flight.pop(get_ident(), None)
            if not isinstance(content, bytes):  # a stream of events: chunked, each written as it is made
                start_response(REASONS[status], [("Content-Type", content_type), ("X-Accel-Buffering", "no")])
                return content
            start_response(REASONS[status], [
                ("Content-Type", content_type),
                ("Content-Length", str(len(content))),
                ("X-Model-Latency-Us", str((clock() - started) // 1000)),
            ])
            return [content]
        if path in ("/ping", "/execution-parameters") and environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return _reply(start_response, 405, f"use GET for {path}".encode())
        if path == "/ping":
            return _reply(start_response, 200, b"")
        if path == "/execution-parameters":  # the container's numbers: one transform per CPU
            return _reply(start_response, 200, json.dumps({"MaxConcurrentTransforms": os.cpu_count() or 1,
                                                          "BatchStrategy": "MULTI_RECORD",
                                                          "MaxPayloadInMB": max_body // 2**20}).encode(), "application/json")
        return _reply(start_response, 404, f"no such path {path!r}; use /ping or /invocations".encode())

    return app


def _request_id(environ) -> str:
    """The id a text-generation runtime logs its token times under: the caller's CustomAttributes (which
    SageMaker passes to the container), else an X-Request-Id."""
    return environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES") or environ.get("HTTP_X_REQUEST_ID") or ""


def _watchdog(in_flight: dict[int, int], timeout: float) -> None:
    """A thread cannot be stopped, so a request past SAGEMAKER_MODEL_SERVER_TIMEOUT takes its worker down
    (its client sees the connection close) and gunicorn starts a fresh one, as the container does."""
    limit_ns = int(timeout * 1e9)
    while True:
        time.sleep(min(timeout / 4, 1.0))
        now = time.perf_counter_ns()
        if any(now - started > limit_ns for started in list(in_flight.values())):
            log.error("a request ran past the %g s model server timeout (SAGEMAKER_MODEL_SERVER_TIMEOUT); "
                      "restarting worker %d", timeout, os.getpid())
            logging.shutdown()
            os._exit(1)


def _read_body(environ, max_body: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise RequestError(400, "Content-Length is not a number") from None
    if length > max_body:
        raise RequestError(413, f"payload of {length} bytes is over the {max_body}-byte limit")
    body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(max_body + 1)  # chunked
    if len(body) > max_body:
        raise RequestError(413, f"payload is over the {max_body}-byte limit")
    return body


def _status_of(error: Exception) -> int:
    """500, unless the handler raised an error that names its own HTTP status (the toolkit's errors do)."""
    code = getattr(error, "status_code", None)
    return code if isinstance(code, int) and 400 <= code <= 599 else 500


def _reply(start_response, status: int, body: bytes, content_type: str = "text/plain"):
    start_response(REASONS[status], [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def serve(artifact: Artifact, options: ServerOptions, extra_ready: dict | None = None) -> None:
    """Run gunicorn in this process until it stops; exits through gunicorn's own sys.exit."""
    import gunicorn.app.base

    # Each worker writes one byte here once its model is loaded: ready means every worker is serving.
    loaded_r, loaded_w = os.pipe()
    os.set_blocking(loaded_w, False)

    def when_ready(arbiter):  # in the master, listening: announce readiness once every worker answers
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        ready = {"pid": os.getpid(), "port": port, "workers": options.workers, **(extra_ready or {})}
        threading.Thread(target=_announce_when_ready, args=(loaded_r, options.workers, host, port,
                                                            options.status_file, ready), daemon=True).start()
        if options.parent_pid is not None:
            threading.Thread(target=_stop_when_orphaned, args=(options.parent_pid,), daemon=True).start()

    class Runtime(gunicorn.app.base.BaseApplication):
        def load_config(self):
            for key, value in _gunicorn_settings(options, when_ready).items():
                self.cfg.set(key, value)

        def load(self):  # in each worker, after the fork
            return _load_worker_app(artifact, options, loaded_w)

    Runtime().run()


def _gunicorn_settings(options: ServerOptions, when_ready: Callable) -> dict:
    settings = {
        "bind": [f"{options.host}:{options.port}"],
        "workers": options.workers,
        "worker_class": "gthread",
        "threads": options.threads,
        "timeout": options.timeout,
        "graceful_timeout": 5,
        "keepalive": 60,  # load generators hold connections open; so does SageMaker's front end
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": f"sme-runtime:{options.port}",
        "control_socket_disable": True,  # its default path is shared by every gunicorn on the machine
        "when_ready": when_ready,
    }
    if os.path.isdir("/dev/shm"):
        settings["worker_tmp_dir"] = "/dev/shm"  # heartbeat file off the disk
    return settings


def _load_worker_app(artifact: Artifact, options: ServerOptions, loaded_w: int) -> Callable:
    from sme.local.runtime.model_loader import load_model

    try:
        model = load_model(artifact)
    except Exception as e:  # ModelLoadError, or whatever else the user's code raised
        reason = str(e) if isinstance(e, ModelLoadError) else f"{type(e).__name__}: {e}"
        log.error("model load failed: %s", reason)
        write_status(options.status_file, FAILED, reason=reason)
        sys.exit(WORKER_BOOT_ERROR)
    log.info("worker %d loaded the model (%s)", os.getpid(), artifact.convention)
    try:
        os.write(loaded_w, b"1")
    except OSError:  # a full pipe after many worker restarts: nobody is counting any more
        pass
    return make_app(model, options.max_body, options.timeout)


def _announce_when_ready(loaded: int, workers: int, host: str, port: int, status_file: Path | None,
                         ready: dict) -> None:
    count = 0
    while count < workers:
        count += len(os.read(loaded, workers - count))
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    while True:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                conn.close()
                break
            conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    write_status(status_file, READY, **ready)
    log.info("ready: /ping answers on %s:%d", host, port)


def _stop_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    log.warning("the process that started this runtime is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)
