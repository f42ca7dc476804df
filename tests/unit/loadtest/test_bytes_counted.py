"""The load test counts the bodies it sent and received (serverless bills them as data processed), and the
counts reconcile with what a real loopback server saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)
REPLY = b'{"predictions": [0.25, 0.75]}'


def test_bytes_sent_and_received_equal_the_servers_own_count(tmp_path: Path) -> None:
    seen = {"in": 0, "out": 0, "requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                seen["in"] += len(body)
                seen["out"] += len(REPLY)
                seen["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(REPLY)))
            self.end_headers()
            self.wfile.write(REPLY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cfg = tmp_path / "lt.yaml"
    cfg.write_text(f"target: {{url: \"http://127.0.0.1:{httpd.server_address[1]}/invocations\"}}\n"
                   "payload: {body: '{\"features\": [1, 2, 3]}', content_type: application/json}\n"
                   "stages: [{duration: 3s, rate: 20}]\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    try:
        done = subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", str(cfg), "--out", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=90, env=env)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"] == seen["requests"] > 0
    assert summary["bytes"] == {"sent": seen["in"], "received": seen["out"]}
    assert seen["in"] == seen["requests"] * len(b'{"features": [1, 2, 3]}')
