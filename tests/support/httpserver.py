"""A counting HTTP/1.1 server on 127.0.0.1 that can inject latency, stalls and error codes.

It is the ground truth for load-test tests and benchmarks: it counts every request it answers and keeps
its own HDR histogram of the time it held each request, so a client's numbers can be checked exactly.

Run it as a subprocess (``python tests/support/httpserver.py --port 0`` prints ``PORT <n>``) or in a thread;
either way the :class:`CountingServer` handle below gives ``.url``, ``.stats()``, ``.configure(...)``,
``.stall(seconds)``, ``.reset()`` and ``.stop()``. Control requests live under ``/__sme/`` and are not
counted:

- ``GET /__sme/stats``: ``{"requests", "by_status", "by_path", "latency_ms": {"p50", ..., "max"}, "first_at",
  "last_at"}`` (wall times of the first and latest counted request)
- ``GET /__sme/times``: ``[[arrived, answered], ...]``, the wall times (``time.time()``) at which each counted
  request was read and its answer written, in arrival order (for latency measured from a client's due time)
- ``GET /__sme/last``: the last counted request (method, path, headers, body)
- ``POST /__sme/config``: JSON ``{"latency_ms": 5 | [lo, hi] (uniform) | [lo, hi, k] (lo + (hi - lo) * u**k
  for u uniform in [0, 1): skewed, so that the mean is not the median), "error_every": n,
  "error_status": 503, "seed": 1, "max_concurrency": n}`` (at most n requests served at once, the rest
  queue: a server whose latency grows once the rate passes n / latency)
- ``POST /__sme/stall``: JSON ``{"seconds": 1.5}``: every request answered during the next 1.5 s is held
  until the stall ends
- ``POST /__sme/reset``: zero the counters and the histogram
- ``POST /__sme/config`` with ``{"stream": {"tokens": 8, "ttft_ms": 30, "itl_ms": 10 | [lo, hi], "format": "tgi" |
  "openai" | "jsonl" | "eventstream", "error_every": n}}``: answer every request as a stream of token events
  (chunked), TGI's server-sent events by default (``eventstream``: the same events inside SageMaker's
  event-stream frames, each event split over two frames; ``error_every``: every n-th stream breaks with
  TGI's error event after half its tokens; ``headers_ms``: wait that long before the headers). ``GET /__sme/tokens``: ``[[arrived, path, [sent, ...]], ...]``, the
  wall time each streamed request was read (a connection's first: when the connection was accepted, which
  its client waited for as well) and each of its token events was written.

Every other request gets ``200`` (or the injected error) with a small JSON body after the configured
delay; keep-alive is honoured so clients reuse connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from hdrh.histogram import HdrHistogram

BODY = b'{"predictions": [0.5]}'


class Behaviour:
    def __init__(self) -> None:
        self.latency_ms: float | list[float] = 0
        self.error_every = 0
        self.error_status = 503
        self.rng = random.Random(1)
        self.stall_until = 0.0
        self.slots: asyncio.Semaphore | None = None  # max_concurrency: a server with a fixed capacity
        self.stream: dict[str, Any] | None = None  # answer as a stream of token events (see the module's doc)

    def update(self, cfg: dict[str, Any]) -> None:
        if "latency_ms" in cfg:
            self.latency_ms = cfg["latency_ms"]
        self.error_every = int(cfg.get("error_every", self.error_every))
        self.error_status = int(cfg.get("error_status", self.error_status))
        if "seed" in cfg:
            self.rng = random.Random(cfg["seed"])
        if cfg.get("max_concurrency"):
            self.slots = asyncio.Semaphore(int(cfg["max_concurrency"]))
        if "stream" in cfg:
            self.stream = cfg["stream"]

    def delay(self) -> float:
        lat = self.latency_ms
        if isinstance(lat, list):
            power = lat[2] if len(lat) > 2 else 1.0
            seconds = (lat[0] + (lat[1] - lat[0]) * self.rng.random() ** power) / 1000.0
        else:
            seconds = float(lat) / 1000.0
        stall_left = self.stall_until - time.monotonic()
        return max(seconds, stall_left)


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_status: dict[str, int] = {}
        self.by_path: dict[str, int] = {}
        self.hist = HdrHistogram(1, 3_600_000_000, 3)
        self.last: dict[str, Any] = {}
        self.first_at = self.last_at = 0.0  # wall time of the first and the latest counted request
        self.times: list[tuple[float, float]] = []  # (arrived, answered) wall times of each counted request
        self.tokens: list[tuple[float, str, list[float]]] = []  # streamed: (arrived, path, [each token's send time])

    def snapshot(self) -> dict[str, Any]:
        h = self.hist
        pct = {f"p{str(p).replace('.', '')}": h.get_value_at_percentile(p) / 1000.0
               for p in (50, 90, 95, 99, 99.9)}
        pct["max"] = h.get_max_value() / 1000.0
        return {"requests": self.requests, "by_status": self.by_status, "by_path": self.by_path,
                "latency_ms": pct, "first_at": self.first_at, "last_at": self.last_at}


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: "Server") -> None:
        self.server = server
        self.buf = b""
        self.transport: Any = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.opened: float | None = time.time()  # a client's first request waited for its connection too
        self.worker = asyncio.get_running_loop().create_task(self.serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker:
            self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", 0))
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4:head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length:]
            self.queue.put_nowait((method, path, headers, body, time.perf_counter(), time.time()))

    async def serve(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None or self.transport.is_closing():
                return
            method, path, headers, body, arrived, arrived_wall = item
            if self.server.behaviour.stream and not path.startswith("/__sme/"):
                since = self.opened if self.opened is not None else arrived_wall
                self.opened = None
                await self.server.stream(self.transport, method, path, headers, body, since)
                continue
            status, payload = await self.server.handle(method, path, headers, body, arrived)
            reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
            # the time held ends as the answer leaves: stamped before the write, so that a client (which reads
            # the answer on another core while this process may be descheduled) never sees less than it
            held, answered = time.perf_counter() - arrived, time.time()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (status, reason.encode(), len(payload), payload))
            if path.startswith("/__sme/"):
                continue
            self.server.counters.hist.record_value(max(1, int(held * 1e6)))
            self.server.counters.times.append((arrived_wall, answered))


class Server:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.counters = Counters()

    async def handle(self, method: str, path: str, headers: dict, body: bytes, arrived: float) -> tuple[int, bytes]:
        if path.startswith("/__sme/"):
            return self.control(method, path, body)
        c = self.counters
        c.requests += 1
        n = c.requests
        c.last_at = time.time()
        if n == 1:
            c.first_at = c.last_at
        c.by_path[path] = c.by_path.get(path, 0) + 1
        c.last = {"method": method, "path": path, "headers": headers, "body": body.decode("utf-8", "replace")}
        if self.behaviour.slots is not None:
            async with self.behaviour.slots:  # queue for a slot, then take the configured time
                await asyncio.sleep(self.behaviour.delay())
        else:
            delay = self.behaviour.delay()
            if delay > 0:
                await asyncio.sleep(delay - (time.perf_counter() - arrived))
        b = self.behaviour
        status = b.error_status if b.error_every and n % b.error_every == 0 else 200
        c.by_status[str(status)] = c.by_status.get(str(status), 0) + 1
        return status, BODY

    async def stream(self, transport: Any, method: str, path: str, headers: dict, body: bytes, arrived: float) -> None:
        """Answer with a chunked stream of token events, each written at its time and its time noted."""
        c, cfg = self.counters, self.behaviour.stream or {}
        c.requests += 1
        c.by_path[path] = c.by_path.get(path, 0) + 1
        c.by_status["200"] = c.by_status.get("200", 0) + 1
        c.last = {"method": method, "path": path, "headers": headers, "body": body.decode("utf-8", "replace")}
        fmt, n = cfg.get("format", "tgi"), int(cfg.get("tokens", 8))
        broken = bool(cfg.get("error_every")) and c.requests % int(cfg["error_every"]) == 0
        kind = "application/vnd.amazon.eventstream" if fmt == "eventstream" else "text/event-stream"
        if cfg.get("headers_ms"):
            await asyncio.sleep(float(cfg["headers_ms"]) / 1000.0)
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % kind.encode())
        sent: list[float] = []
        c.tokens.append((arrived, path, sent))
        start = time.time()
        for i in range(n):
            gap = float(cfg.get("ttft_ms", 0)) if i == 0 else self._itl(cfg.get("itl_ms", 0))
            await asyncio.sleep(max(0.0, (start + gap / 1000.0) - time.time()))
            if broken and i == n // 2:
                _chunk(transport, _wrap(fmt, b'data:{"error":"Request failed during generation: boom",'
                                             b'"error_type":"generation"}\n\n'))
                break
            start = time.time()
            sent.append(start)
            for piece in _wrap(fmt, _token_event(fmt, i, n)):
                _chunk(transport, [piece])
        else:
            if fmt in ("openai",):
                _chunk(transport, _wrap(fmt, b"data: [DONE]\n\n"))
        transport.write(b"0\r\n\r\n")

    def _itl(self, itl: Any) -> float:
        if isinstance(itl, list):
            return itl[0] + (itl[1] - itl[0]) * self.behaviour.rng.random()
        return float(itl)

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        data = json.loads(body or b"{}") if method == "POST" else {}
        if path == "/__sme/stats":
            return 200, json.dumps(self.counters.snapshot()).encode()
        if path == "/__sme/last":
            return 200, json.dumps(self.counters.last).encode()
        if path == "/__sme/tokens":
            return 200, json.dumps(self.counters.tokens).encode()
        if path == "/__sme/times":
            return 200, json.dumps(sorted(self.counters.times)).encode()
        if path == "/__sme/config":
            self.behaviour.update(data)
            return 200, b"{}"
        if path == "/__sme/stall":
            self.behaviour.stall_until = time.monotonic() + float(data["seconds"])
            return 200, b"{}"
        if path == "/__sme/reset":
            self.counters.reset()
            self.behaviour = Behaviour()
            return 200, b"{}"
        return 404, b"{}"


def _token_event(fmt: str, i: int, n: int) -> bytes:
    last = i == n - 1
    if fmt == "openai":
        doc: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}
        if last:
            doc["usage"] = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}
        return b"data: " + json.dumps(doc).encode() + b"\n\n"
    doc = {"token": {"id": i, "text": f" w{i}", "logprob": -0.5, "special": False},
           "generated_text": None, "details": None}
    if last:
        doc["generated_text"] = "".join(f" w{k}" for k in range(n))
        doc["details"] = {"finish_reason": "length", "generated_tokens": n, "seed": None}
    if fmt == "jsonl":
        return json.dumps(doc).encode() + b"\n"
    return b"data:" + json.dumps(doc).encode() + b"\n\n"


def _wrap(fmt: str, event: bytes) -> list[bytes]:
    """The bytes to write for one event: as is, or split over two event-stream PayloadPart frames."""
    if fmt != "eventstream":
        return [event]
    half = len(event) // 2
    return [_frame(event[:half]), _frame(event[half:])]


def _frame(payload: bytes) -> bytes:
    """One event-stream message (prelude, string headers, payload, CRC32s), written from the format's spec."""
    import struct
    import zlib

    headers = {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}
    head = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
                    for k, v in headers.items())
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _chunk(transport: Any, pieces: list[bytes]) -> None:
    for piece in pieces:
        transport.write(b"%x\r\n%s\r\n" % (len(piece), piece))


async def serve(port: int, ready: Any = None) -> None:
    server = Server()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", port, backlog=1024)
    actual = srv.sockets[0].getsockname()[1]
    if ready:
        ready(actual)
    async with srv:
        await srv.serve_forever()


class CountingServer:
    """A handle on a running server (subprocess or thread). Use as a context manager."""

    def __init__(self, port: int, proc: subprocess.Popen | None = None, thread: Any = None, loop: Any = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._proc, self._thread, self._loop = proc, thread, loop

    @classmethod
    def start_process(cls, latency_ms: Any = 0, cpu: int | None = None) -> "CountingServer":
        """Start in a child process (its own core, its own GIL); the port is read from its first line."""
        cmd = [sys.executable, os.path.abspath(__file__), "--port", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {cpu})
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"httpserver did not start: {line!r}")
        server = cls(int(line.split()[1]), proc=proc)
        if latency_ms:
            server.configure(latency_ms=latency_ms)
        return server

    @classmethod
    def start_thread(cls) -> "CountingServer":
        """Start on a thread of this process (fine for light traffic)."""
        ready = threading.Event()
        box: dict[str, Any] = {}
        loop = asyncio.new_event_loop()

        def on_ready(port: int) -> None:
            box["port"] = port
            ready.set()

        thread = threading.Thread(target=lambda: loop.run_until_complete(serve(0, on_ready)), daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("httpserver thread did not start")
        return cls(box["port"], thread=thread, loop=loop)

    def _call(self, path: str, data: dict | None = None) -> dict:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def stats(self) -> dict:
        return self._call("/__sme/stats")

    def last(self) -> dict:
        return self._call("/__sme/last")

    def times(self) -> list[list[float]]:
        return self._call("/__sme/times")  # type: ignore[return-value]

    def tokens(self) -> list[list[Any]]:
        return self._call("/__sme/tokens")  # type: ignore[return-value]

    def configure(self, **cfg: Any) -> None:
        self._call("/__sme/config", cfg)

    def stall(self, seconds: float) -> None:
        self._call("/__sme/stall", {"seconds": seconds})

    def reset(self) -> None:
        self._call("/__sme/reset", {})

    def stop(self) -> None:
        if self._proc:
            self._proc.terminate()
            self._proc.wait(10)
        if self._loop:
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)

    def __enter__(self) -> "CountingServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    try:
        asyncio.run(serve(args.port, ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
