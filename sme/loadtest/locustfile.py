"""The locustfile sme runs in its load process (loaded by Locust from ``sme.loadtest.child``).

It reads the plan written by the parent (``SME_LOADTEST_PLAN``) and defines:

- one user class for the target: a FastHttpUser that POSTs payload bodies (plus an API key for the
  front door, or a SigV4 signature per request for InvokeEndpoint, from refreshable credentials), or
  submits InvokeEndpointAsync requests whose results ``async_load`` follows in S3;
- the shape (``SmeShape``): the stages as Locust's ``LoadTestShape``; in the open model the users are a
  pool of in-flight slots and a scheduler greenlet in each process releases requests at their due times;
- the statistics plumbing: every request lands in a per-process ``Recorder``; workers ship drained
  batches in Locust's worker reports (and a last one when they stop), the master or the local runner
  merges them into a ``Tally`` and writes progress lines and the final tally for the parent.

Only the load process imports locust or gevent: this module, ``child.py`` and ``progress.py``.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from time import perf_counter, perf_counter_ns

import gevent
import gevent.queue
import locust.runners
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING

from sme.loadtest.config import Stage
from sme.loadtest.limits import PROBE_EVERY_S, CpuSampler, LoopProbe
from sme.loadtest.payloads import BodyPicker, read_bodies
from sme.loadtest.progress import Progress
from sme.loadtest.shapes import ArrivalClock, Schedule
from sme.loadtest.stats import Recorder, clock_skew, error_key
from sme.loadtest.streaming import StreamReading

with open(os.environ["SME_LOADTEST_PLAN"]) as fh:
    PLAN = json.load(fh)
TARGET = PLAN["target"]
SCHEDULE = Schedule([Stage(**s) for s in PLAN["stages"]])
RECORDER = Recorder()
JOBS: gevent.queue.Queue = gevent.queue.Queue()
OPEN_START_DELAY_S = 1.0
GRACE = float(PLAN.get("grace", 1.0))
locust.runners.WORKER_REPORT_INTERVAL = float(PLAN.get("report_interval", 1.0))
_state: dict = {"progress": None, "scheduler": None, "sample": None, "ended": False}
RECORDER.record(0.0, 1.0, None)  # warm up (imports, first allocations) before any request is timed
RECORDER.drain()


def _host(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _signer():  # type: ignore[no-untyped-def]
    """Per-request SigV4 headers for InvokeEndpoint; credentials refresh themselves when they expire."""
    import botocore.session

    from sme.loadtest.sigv4 import InvokeSigner

    credentials = botocore.session.get_session().get_credentials()
    signer = InvokeSigner(credentials, TARGET["url"], TARGET["sign"]["region"], TARGET["sign"]["service"],
                          TARGET["method"], PLAN["payload"]["content_type"])
    return signer.headers


SIGNER = _signer() if TARGET.get("sign") else None
STREAM = TARGET.get("stream")  # None, or how a streamed answer is framed: sse | eventstream
if STREAM:
    StreamReading(STREAM, 0.0).feed(b"", 0)  # import its parsers now, not inside the first timed request


class SmeUser(FastHttpUser):
    """One user of the closed model, or one in-flight slot of the open model."""

    host = _host(TARGET["url"])
    wait_time = constant(0)
    network_timeout = connection_timeout = float(TARGET.get("timeout", 60))
    insecure = bool(TARGET.get("insecure", False))
    _count = 0

    def on_start(self) -> None:
        SmeUser._count += 1
        self.url, self.method, self.name = TARGET["url"], TARGET["method"], TARGET.get("label") or TARGET["name"]
        self.headers = {"Content-Type": PLAN["payload"]["content_type"], **TARGET["headers"]}
        self.sign = SIGNER
        payload = PLAN["payload"]
        self.bodies = BodyPicker(BODIES, payload["order"], offset=SmeUser._count * 7919 + os.getpid(),
                                 seed=f"{os.getpid()}-{SmeUser._count}")

    @task
    def invoke(self) -> None:
        if _state["ended"]:
            # a worker handed over its last batch: a request now would reach the target and be counted by
            # nobody. Locust's master can send a ramp's "spawn" after its "stop" (it sends them from greenlets
            # of their own, which a stop in mid-ramp leaves pending): users started by it end here, unsent.
            raise StopUser()
        if SCHEDULE.open:
            return self._open_slot()
        body = self.bodies.next()
        if ASYNC is not None:
            return self._submit(body, perf_counter(), time.time())
        headers = {**self.headers, **self.sign(body)} if self.sign else self.headers
        if STREAM:
            return self._streamed(body, headers, perf_counter(), None)
        RECORDER.bytes[0] += len(body)
        response = self.client.request(self.method, self.url, data=body, headers=headers, name=self.name)
        if _state["sample"] is None:
            _keep_sample(response)

    def _open_slot(self) -> None:
        self._state = LOCUST_STATE_WAITING  # idle slots hold no request: a stop may kill them at once
        job = JOBS.get()
        self._state = LOCUST_STATE_RUNNING
        due_perf, due_wall = job
        if perf_counter() - due_perf > GRACE:
            RECORDER.drop(due_wall)
            return
        body = self.bodies.next()
        if ASYNC is not None:
            return self._submit(body, due_perf, due_wall)
        headers = {**self.headers, **self.sign(body)} if self.sign else self.headers
        if STREAM:
            return self._streamed(body, headers, due_perf, due_wall)
        RECORDER.bytes[0] += len(body)
        with self.client.request(self.method, self.url, data=body, headers=headers, name=self.name,
                                 catch_response=True) as response:
            # latency from the due time, not the send time: a stalled server cannot hide (no coordinated omission)
            response.request_meta["response_time"] = (perf_counter() - due_perf) * 1000.0
            response.request_meta["start_time"] = due_wall
            if _state["sample"] is None:
                _keep_sample(response)

    def _streamed(self, body: bytes, headers: dict, started: float, due_wall: float | None) -> None:
        """One request whose answer streams: timed from ``started`` (the due time in the open model) to its
        first token event and its last byte, every inter-token gap recorded."""
        reading = StreamReading(STREAM, started)
        with self.client.request(self.method, self.url, data=body, headers=headers, name=self.name,
                                 stream=True, catch_response=True) as response:
            ok = 0 < response.status_code < 400
            try:
                _read_stream(response, reading) if ok else _drain(response)
            except Exception as exc:  # noqa: BLE001 - a broken stream (or connection) fails this request only
                response.failure(exc)
                ok = False
            meta = response.request_meta
            meta["response_time"] = (perf_counter() - started) * 1000.0
            if due_wall is not None:
                meta["start_time"] = due_wall
            if ok:
                RECORDER.record_stream(meta["start_time"] + meta["response_time"] / 1000.0, reading.ttft_ms,
                                       reading.gaps_us(), reading.tokens)
            if _state["sample"] is None and response.status_code:
                _state["sample"] = {"status": response.status_code,
                                    "content_type": response.headers.get("content-type"),
                                    "body": reading.head.decode("utf-8", "replace")}


    def _submit(self, body: bytes, sent_perf: float, sent_wall: float) -> None:
        """InvokeEndpointAsync: a 202 is not the request's end (its result object is: ``async_load``), so only a
        refused submission is recorded here, as a failure with the time it took."""
        inference_id, extra = ASYNC.submit_headers(body, PLAN["payload"]["content_type"])
        headers = {**self.headers, **(self.sign(b"") if self.sign else {}), **extra}
        with self.client.request("POST", self.url, data=b"", headers=headers, name=self.name, catch_response=True,
                                 context={"sme_async": True}) as response:
            response.request_meta["response_time"] = (perf_counter() - sent_perf) * 1000.0
            response.request_meta["start_time"] = sent_wall
            if response.status_code == 202 and not ASYNC.submitted(inference_id, response.headers, sent_wall,
                                                                   sent_perf):
                response.failure("202 without an X-Amzn-SageMaker-OutputLocation")
            if _state["sample"] is None:
                _keep_sample(response)


class _Quiet(Exception):
    """A stream's idle timer fired (``_read_stream``)."""


def _read_stream(response, reading: StreamReading) -> None:  # type: ignore[no-untyped-def]
    """Hand the pieces of the answer to ``reading`` with the moment each arrived, ``BATCH`` reads at a time
    (each token's cost is paid beside the requests timed: bench/stream). geventhttpclient's own ``read(n)``
    waits until n bytes are in, which would hold tokens back: read its socket as it does.

    The socket's timeout (the target's ``timeout``) still ends a stream that goes quiet that long, but by
    one timer per stream, not one per read: a gevent socket with a timeout starts and stops a timer each
    time it waits, 8% of a streaming load process's CPU (py-spy, bench/stream). Here the socket waits with
    none, one timer runs for the stream, and when it fires the stream fails only if nothing came for that
    long (otherwise it is set again for the rest), with the same error as the socket's own."""
    raw = response._response
    batch = reading.BATCH
    pieces: list = []
    times: list = []
    at = perf_counter_ns() // 1000
    sock = raw._sock
    quiet_s = sock.timeout if sock is not None else None
    timer = None
    if quiet_s:
        sock.settimeout(None)
        timer = gevent.Timeout.start_new(quiet_s, _Quiet)
    try:
        while True:
            if raw._body_buffer:  # take the parser's buffer whole (it appends to a fresh one): no copy
                chunk, raw._body_buffer = raw._body_buffer, bytearray()
                pieces.append(chunk)
                times.append(at)
                if len(pieces) == batch:
                    reading.take(pieces, times)
                    pieces, times = [], []
            if raw.message_complete:
                break
            if raw._sock is None:
                raise ConnectionError("the connection closed in the middle of the stream")
            try:
                data = sock.recv(raw.block_size)
            except _Quiet:  # (the only place this greenlet waits, so the only place the timer lands)
                left = quiet_s - (perf_counter_ns() // 1000 - at) / 1e6
                if left <= 0.0:
                    raise socket.timeout("timed out") from None
                timer = gevent.Timeout.start_new(left, _Quiet)
                continue
            at = perf_counter_ns() // 1000  # (whole microseconds: the gaps between them are counted in C)
            raw.feed(data)
            if not data and not raw.message_complete:
                raise ConnectionError("the connection closed in the middle of the stream")
    finally:
        if timer is not None:
            timer.close()
            sock.settimeout(quiet_s)  # (before this greenlet yields: the pool may hand the socket on)
    reading.take(pieces, times)
    reading.close(at)


def _drain(response) -> None:  # type: ignore[no-untyped-def]
    """Read an error reply to its end (its connection is then reused)."""
    raw = getattr(response, "_response", None)
    if raw is not None:
        raw.read()



BODIES = read_bodies(PLAN["payload"]["spec"], Path(PLAN["payload"]["base"]), PLAN["source"], stream=bool(STREAM))


ASYNC = None
if TARGET.get("async"):
    from sme.loadtest.async_load import AsyncLoad

    ASYNC = AsyncLoad(TARGET["async"], BODIES, RECORDER, PLAN.get("out"), float(TARGET.get("timeout", 60)))


def _keep_sample(response) -> None:  # type: ignore[no-untyped-def]
    try:
        body = response.content or b""
        _state["sample"] = {"status": response.status_code, "content_type": response.headers.get("content-type"),
                            "body": body[:500].decode("utf-8", "replace")}
    except Exception:  # noqa: BLE001 - a sample is a nicety; the request itself is already counted
        _state["sample"] = {"status": getattr(response, "status_code", 0)}


def _scheduler(index: int, workers: int, t0: float) -> None:
    """Release this process's share of open-model requests at their due times (t0: the common start)."""
    wall0 = t0
    t0 = perf_counter() + (t0 - time.time())
    for due in ArrivalClock(SCHEDULE, workers, index):
        delay = t0 + due - perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        JOBS.put((t0 + due, wall0 + due))


def _start_scheduler(index: int, workers: int, t0: float) -> None:
    if SCHEDULE.open and _state["scheduler"] is None:
        _state["scheduler"] = gevent.spawn(_scheduler, index, workers, t0)


def _on_start_message(data: dict) -> None:
    """A worker learns the common start, in the master's clock. A worker on another machine whose clock is
    off by more than CLOCK_TOLERANCE_S (the estimate includes the message's trip) moves the start into its
    own clock and records completion times back in the master's, so that seconds line up across machines."""
    skew = clock_skew(data.get("sent_at"), time.time())
    if skew:
        RECORDER.offset = skew
        logging.getLogger("sme").warning("this worker's clock is %+.2fs off the master's: correcting its times", skew)
    _start_scheduler(data["index"], data["workers"], data["t0"] + skew)


def _stop_scheduler() -> None:
    if _state["scheduler"] is not None:
        _state["scheduler"].kill(block=True)
    while not JOBS.empty():  # due but never started before the end: dropped
        RECORDER.drop(JOBS.get_nowait()[1])


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, response=None, context=None,  # type: ignore[no-untyped-def]
                exception=None, start_time=0.0, url=None, **_kw) -> None:
    # (every argument Locust passes is named: a catch-all dict per request costs measurable CPU at 6k req/s)
    if exception is None and context and context.get("sme_async"):
        return  # a queued asynchronous request: recorded when its result object is seen
    RECORDER.bytes[1] += response_length or 0  # (a streamed answer's is not counted: see results.summarize)
    if exception is None:
        RECORDER.record(start_time + response_time / 1000.0, response_time, None)
    else:
        RECORDER.record(start_time + response_time / 1000.0, response_time,
                        error_key(getattr(response, "status_code", 0), exception, _error_type(response)))


def _error_type(response) -> str | None:  # type: ignore[no-untyped-def]
    """The AWS error code an error reply names (SageMaker Runtime: ``x-amzn-ErrorType``), if any."""
    try:
        return response.headers.get("x-amzn-ErrorType")
    except Exception:  # noqa: BLE001 - no reply (a connection error) has no headers to read
        return None


def _sample_cpu(role: str) -> None:
    """Once a second, this process's CPU and its machine's, and how late its loop was (the probe's), recorded with
    the requests (see limits.py)."""
    host = socket.gethostname()
    RECORDER.who = {"process": f"{role}:{os.getpid()}@{host}", "role": role, "host": host, "cores": os.cpu_count()}
    sampler, probe = CpuSampler(), LoopProbe()
    sampler.sample()
    gevent.spawn(_probe_loop, probe)
    while True:
        gevent.sleep(1.0 - (time.time() % 1.0) + 0.02)
        sample = sampler.sample()
        if sample is not None:
            RECORDER.record_cpu(*sample, *probe.take())


def _probe_loop(probe: LoopProbe) -> None:
    """How late this loop is, every PROBE_EVERY_S (limits.LoopProbe)."""
    while True:
        due = perf_counter() + PROBE_EVERY_S
        gevent.sleep(PROBE_EVERY_S)
        probe.tick(due)


@events.init.add_listener
def _on_init(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    runner = environment.runner
    role = "worker" if isinstance(runner, WorkerRunner) else "master" if isinstance(runner, MasterRunner) else "local"
    gevent.spawn(_sample_cpu, role)
    if isinstance(runner, WorkerRunner):
        runner.register_message("sme_start", lambda environment, msg: _on_start_message(msg.data))

        def report(client_id, data) -> None:  # type: ignore[no-untyped-def]
            data["sme"] = RECORDER.drain()

        environment.events.report_to_master.add_listener(report)
        environment.events.test_stopping.add_listener(lambda **kw: _stop_scheduler())

        def final(**kw) -> None:  # type: ignore[no-untyped-def]
            _state["ended"] = True  # one run per worker: nothing is sent after the last batch (see invoke)
            runner.send_message("sme_final", {**RECORDER.drain(), "sample": _state["sample"]})
            # the users are stopped: skip Locust's wait of stop_timeout before the worker reports ready
            # again, so that the master's quit reaches it at once instead of stop_timeout seconds later
            environment.stop_timeout = 0

        environment.events.test_stop.add_listener(final)
        return
    progress = _state["progress"] = Progress(PLAN, SCHEDULE, RECORDER, runner)
    progress.local_sample = lambda: _state["sample"]
    if ASYNC is not None:
        ASYNC.start_polling()
        progress.drain, progress.extra = ASYNC.drain, ASYNC.summary
    if isinstance(runner, MasterRunner):
        def on_report(client_id, data) -> None:  # type: ignore[no-untyped-def]
            if "sme" in data:
                progress.workers_seen.add(client_id)
                progress.tally.add(data["sme"])

        environment.events.worker_report.add_listener(on_report)

        def on_final(environment, msg) -> None:  # type: ignore[no-untyped-def]
            progress.finals.add(msg.node_id)
            progress.tally.add(msg.data)
            progress.sample = progress.sample or msg.data.get("sample")

        runner.register_message("sme_final", on_final)
    else:
        environment.events.test_stopping.add_listener(lambda **kw: _stop_scheduler())

    def on_quitting(**kw) -> None:  # type: ignore[no-untyped-def]
        progress.finish(interrupted=True)

    environment.events.quitting.add_listener(on_quitting)


def _tell_workers(runner, workers, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Send these workers "quit" (stopped workers leave the master's list only once their stop_timeout passes:
    they quit now) or "stop" (see Progress.wait_for_finals), whatever state the master holds them in."""
    from locust.rpc import Message

    for client_id in workers:
        runner.server.send_to_client(Message(kind, None, client_id))


class SmeShape(LoadTestShape):
    """The stages, ticked once a second by Locust's master (or local runner)."""

    def tick(self):  # type: ignore[no-untyped-def]
        progress = _state["progress"]
        t = self.get_run_time()
        if progress.started_at is None:
            # open model: every process starts its clock at one agreed time, once its pool is spawned
            # start on a whole wall-clock second: per-second buckets then line up with stage boundaries
            t0 = math.ceil(time.time() + (OPEN_START_DELAY_S if SCHEDULE.open else 0.0))
            if not SCHEDULE.open:
                gevent.sleep(max(0.0, t0 - time.time()))
            progress.start(t0)
            if isinstance(self.runner, MasterRunner):
                workers = sorted(c.id for c in self.runner.clients.all)
                progress.after_stop = lambda: _tell_workers(self.runner, workers, "quit")
                progress.stop_workers = lambda ids: _tell_workers(self.runner, ids, "stop")
                for i, client_id in enumerate(workers):
                    self.runner.send_message("sme_start", {"index": i, "workers": len(workers), "t0": t0,
                                                           "sent_at": time.time()}, client_id=client_id)
            else:
                _start_scheduler(0, 1, t0)
        elif progress.end_if_due():  # (never on the first tick: the users must be started once)
            return None
        tick = SCHEDULE.at(min(t, SCHEDULE.end - 1e-6))
        if SCHEDULE.open:
            pool = PLAN["max_in_flight"]
            return pool, pool * 100
        return tick.users, tick.spawn_rate


# Locust's Runner.stop logs its caller through inspect.stack(), whose first call maps every loaded module to
# its real path (30 ms here, with ~800 modules), on the loop: the streams in flight at a run's end would read
# their next token that much late (a time to first token 131 ms long against the server's 101). Map them now.
inspect.stack(1)

# Everything imported so far lives for the whole run: take it out of the collector's sight so that a
# full collection cannot pause every in-flight request for tens of milliseconds mid-test.
gc.collect()
gc.freeze()
