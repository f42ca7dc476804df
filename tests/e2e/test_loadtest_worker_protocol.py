"""A real `sme loadtest --worker` (real Locust, real requests to a counting server on 127.0.0.1) driven by this
test as its master, over Locust's own wire protocol (ZeroMQ, msgpack'd `(type, data, node_id)` as
`locust.rpc.protocol.Message` serializes them), so that the messages arrive in an order a real master sends
only rarely. (Importing locust here would monkey-patch this pytest process: the wire format is written out.)

Locust's master sends a ramp's "spawn" messages from greenlets of their own (`MasterRunner.start`:
`gevent.spawn_later(0, send_to_client, ...)`); a stop that kills the ramp in the middle leaves them
pending, and they go out after its "stop". A worker then starts its users again after it sent sme its last
batch: every request they send reaches the server and is counted by nobody (a CI run lost 588 of 2,395).
"""

from __future__ import annotations

import subprocess
import sys
import time

import msgpack
import pytest
import zmq

from sme.net import free_port
from tests.e2e.test_loadtest import env, server, srv, url_config, write_config  # noqa: F401

pytestmark = pytest.mark.timeout(120)


class Message:
    def __init__(self, kind: str, data, node_id: str) -> None:  # type: ignore[no-untyped-def]
        self.type, self.data, self.node_id = kind, data, node_id

    def serialize(self) -> bytes:
        return msgpack.dumps((self.type, self.data, self.node_id))

    @classmethod
    def unserialize(cls, raw: bytes) -> "Message":
        return cls(*msgpack.loads(raw, raw=False, strict_map_key=False))


class FakeMaster:
    """Locust's master side of the wire, by hand: a ROUTER socket; every message the worker sent is kept."""

    def __init__(self) -> None:
        self.port = free_port()
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(f"tcp://127.0.0.1:{self.port}")
        self.worker: str | None = None
        self.seen: list[Message] = []

    def send(self, kind: str, data) -> None:  # type: ignore[no-untyped-def]
        self.socket.send_multipart([self.worker.encode(), Message(kind, data, self.worker).serialize()])

    def spawn(self, users: int) -> None:
        self.send("spawn", {"timestamp": time.time(), "user_classes_count": {"SmeUser": users},
                            "host": None, "stop_timeout": 30, "parsed_options": {}})

    def until(self, kind: str, timeout: float = 30.0) -> Message:
        """Read (answering heartbeats) until a message of this kind comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.socket.poll(100):
                continue
            addr, raw = self.socket.recv_multipart()
            msg = Message.unserialize(raw)
            self.seen.append(msg)
            if msg.type == "client_ready" and self.worker is None:
                self.worker = addr.decode()
                self.send("ack", {"index": 0})
            elif msg.type == "heartbeat":
                self.send("heartbeat", None)
            if msg.type == kind:
                return msg
        raise AssertionError(f"no {kind!r} from the worker within {timeout} s; got {[m.type for m in self.seen]}")

    def drain(self) -> None:
        while self.socket.poll(200):
            self.seen.append(Message.unserialize(self.socket.recv_multipart()[1]))

    def counted(self, until: str | None = None) -> int:
        """The requests sme's worker handed over (its batches ride on "stats" and "sme_final"), up to the first
        message of kind ``until`` included. A master writes its results once every worker's last batch came."""
        total = 0
        for msg in self.seen:
            batch = (msg.data or {}).get("sme") if msg.type == "stats" else msg.data if msg.type == "sme_final" else None
            total += sum(entry[1] for entry in (batch or {}).get("seconds", {}).values())
            if msg.type == until:
                break
        return total


def test_a_worker_sends_nothing_after_its_last_batch_even_when_a_spawn_comes_after_the_stop(srv, tmp_path, env):
    srv.configure(latency_ms=2)
    cfg = write_config(tmp_path, url_config(srv, "  - {duration: 60s, users: 4}"))
    master = FakeMaster()
    worker = subprocess.Popen([sys.executable, "-m", "sme", "loadtest", "-c", str(cfg), "--worker",
                               "--master-host", "127.0.0.1", "--master-port", str(master.port)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        master.until("client_ready")
        master.spawn(2)
        master.until("spawning_complete")
        deadline = time.monotonic() + 30
        while srv.stats()["requests"] < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.stats()["requests"] >= 100, "the worker's users load the server"
        master.send("stop", None)
        master.spawn(4)  # a ramp's spawn that was still pending when the master stopped
        master.until("sme_final")
        master.until("client_stopped")
        time.sleep(1.5)  # long enough for respawned users to send hundreds of requests
        master.send("quit", None)
        out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err + out
        assert "Traceback" not in out + err, err + out
        master.drain()  # what the worker sent as it quit (Locust sends one more report)
        assert srv.stats()["requests"] == master.counted(until="sme_final"), \
            "every request the worker sent is in a batch it handed over by its last one"
        assert master.counted() == master.counted(until="sme_final"), "no batch after the last one"
    finally:
        if worker.poll() is None:
            worker.kill()
        master.socket.close()
