"""The report in a real browser: headless Chromium opens it, and we read what it drew.

Chromium is driven over the DevTools protocol with a tiny stdlib WebSocket client (no extra package), so
the test sees console errors, uncaught exceptions and every network request the page makes, measures
each chart's drawn paths, and saves a full-page screenshot under the test's temporary directory.
Chromium missing is installed by the test itself (tests/support/install-chromium); if that fails, a failure
with the fix, not a skip.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.runs import churn_run, write_loadtest, write_watch  # noqa: E402

pytestmark = pytest.mark.timeout(120)

CHART_PROBE = """JSON.stringify([...document.querySelectorAll('svg.chart')].map(svg => ({
  key: svg.dataset.chart,
  width: svg.getBoundingClientRect().width,
  series: [...svg.querySelectorAll('path.series')].map(p => ({
    name: p.dataset.series, n: +p.dataset.n, length: p.getTotalLength(),
    box: p.getBBox().width + p.getBBox().height})),
  circles: svg.querySelectorAll('circle.pt').length,
  ticks: [...svg.querySelectorAll('text.tick, text.stage-label, text.event-no')].map(t => { const b = t.getBoundingClientRect();
    return [b.left, b.right, b.top, b.bottom, t.textContent]; }),
  axisTitles: [...svg.querySelectorAll('text.axis-title')].map(t => t.textContent),
})))"""


INSTALL = Path(__file__).resolve().parents[1] / "support" / "install-chromium"


def chromium() -> str:
    """Headless Chromium; installed (Debian's package, once) when the machine has none, so that README's
    test command needs nothing else."""
    for attempt in range(2):
        for name in ("chromium", "chromium-browser", "google-chrome"):
            found = shutil.which(name)
            if found:
                return found
        if attempt == 0:
            subprocess.run(["bash", str(INSTALL)], check=False, timeout=900)
    pytest.fail("headless Chromium is needed to test the report in a browser, and none could be installed "
                f"(fix: run {INSTALL}, or `apt-get install -y chromium`)", pytrace=False)


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol on loopback: text frames, client-side masking."""

    def __init__(self, url: str, timeout: float = 30.0):
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], f"websocket upgrade refused: {head!r}"

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
                                  if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            buf += chunk
        return buf

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            if b0 & 0x0F == 0x8:
                raise ConnectionError("DevTools closed the connection")
            if b0 & 0x0F in (0x9, 0xA):  # ping/pong: nothing to do for our short sessions
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """A headless Chromium with one page, and the console errors and requests that page produced."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1100,900",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port(profile)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(p for p in pages if p.get("type") == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.errors: list[str] = []
        self.requests: list[str] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _devtools_port(self, profile: Path) -> int:
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.proc.poll() is not None:
                pytest.fail(f"chromium exited with {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        pytest.fail("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                assert "error" not in msg, f"{method} failed: {msg['error']}"
                return msg.get("result", {})
            self._event(msg)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._event(msg)
            if msg.get("method") == event:
                return
        pytest.fail(f"no {event} within {timeout} s")

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append("log: " + params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))

    def open(self, path: Path) -> None:
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, f"page script failed: {result['exceptionDetails']}"
        return result["result"].get("value")

    def screenshot(self, out: Path) -> Path:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=1100, height=int(height), deviceScaleFactor=1,
                  mobile=False)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def sme_report(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", "report", str(directory), *args], capture_output=True,
                          text=True, timeout=60, env=env)


def look_at(browser: Browser, report: Path, shot: Path) -> list[dict[str, Any]]:
    """Open the report; check it made no request and no error; save a screenshot; return its charts."""
    browser.open(report)
    charts = json.loads(browser.evaluate(CHART_PROBE))
    browser.screenshot(shot)
    assert browser.errors == [], f"the report logged errors in the browser: {browser.errors}"
    foreign = [u for u in browser.requests if not u.startswith(("file:", "data:", "about:"))]
    assert foreign == [], f"the report is not self-contained: it fetched {foreign}"
    assert shot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    for chart in charts:
        assert chart["width"] > 500, f"chart {chart['key']} is drawn {chart['width']} px wide"
        assert chart["series"], f"chart {chart['key']} has no series"
        for s in chart["series"]:
            assert s["n"] > 0 and s["box"] > 0, f"chart {chart['key']}: series {s['name']} draws nothing: {s}"
        assert any(t.startswith("time since start") for t in chart["axisTitles"]), chart["axisTitles"]
        assert_no_overlap(chart)
    return charts


def assert_no_overlap(chart: dict[str, Any]) -> None:
    boxes = chart["ticks"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
            assert apart, f"chart {chart['key']}: labels {a[4]!r} and {b[4]!r} overlap"


def test_full_run_draws_every_chart_with_data(tmp_path: Path, browser: Browser) -> None:
    run = churn_run(tmp_path / "churn-1")
    done = sme_report(run, "--instance-type", "ml.m5.large")
    assert done.returncode == 0, done.stderr
    assert "AWS Pricing API did not answer" in done.stderr, done.stderr  # no AWS here: the table was used
    charts = look_at(browser, run / "report.html", tmp_path / "churn-1.png")
    assert [c["key"] for c in charts] == ["throughput", "latency", "instances", "utilisation", "subnets"]
    names = {s["name"] for c in charts for s in c["series"]}
    assert {"requests/s", "client p99", "ModelLatency avg", "OverheadLatency avg", "instances", "CPU", "memory",
            "headroom (all subnets)"} <= names
    markers = browser.evaluate("document.querySelectorAll('svg[data-chart=instances] g.marker').length")
    assert markers == 2, "both scaling activities should be marked on the instance chart"
    stages = browser.evaluate("document.querySelectorAll('svg[data-chart=throughput] rect.stage').length")
    assert stages == 3


def test_watch_file_alone_makes_a_report(tmp_path: Path, browser: Browser) -> None:
    run = tmp_path / "watch-only"
    write_watch(run / "watch.jsonl", 600, interval=30, scale_out_at=300, instance_type="ml.c5.xlarge")
    done = sme_report(run, "--prices", "table")
    assert done.returncode == 0, done.stderr
    charts = look_at(browser, run / "report.html", tmp_path / "watch-only.png")
    assert [c["key"] for c in charts] == ["latency", "instances", "utilisation", "subnets"]
    cost = browser.evaluate("document.querySelector('[data-card=\"Cost of the run\"] .v').textContent")
    assert cost.startswith("$"), cost


def test_loadtest_alone_makes_a_report(tmp_path: Path, browser: Browser) -> None:
    run = tmp_path / "loadtest-only"
    write_loadtest(run, [(900.0, 20.0), (900.0, 60.0)], fail_every=50)  # 30 minutes: a minutes axis
    done = sme_report(run, "--prices", "table")
    assert done.returncode == 0, done.stderr
    charts = look_at(browser, run / "report.html", tmp_path / "loadtest-only.png")
    assert [c["key"] for c in charts] == ["throughput", "latency"]
    assert charts[0]["axisTitles"][0] == "time since start (min)"
    assert charts[0]["circles"] == 0, "1,800 points per series are carried by the path alone"
    note = browser.evaluate("document.querySelector('ul.notes').textContent")
    assert "no watch file" in note


def test_real_loadtest_run_opens_in_the_browser(tmp_path: Path, browser: Browser) -> None:
    """`sme loadtest` against a local HTTP server, then `sme report` on what it wrote."""
    from tests.support.httpserver import CountingServer

    server = CountingServer.start_process()
    try:
        cfg = tmp_path / "lt.yaml"
        cfg.write_text(f"target: {{url: \"{server.url}/invocations\"}}\n"
                       "payload: {body: '{\"x\": 1}', content_type: application/json}\n"
                       "stages:\n  - steps: {kind: rate, start: 10, step: 10, every: 2s, count: 3}\n"
                       "slo: {p99_ms: 250}\n")
        run = tmp_path / "real"
        lt = subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", str(cfg), "--out", str(run)],
                            capture_output=True, text=True, timeout=90)
        assert lt.returncode == 0, lt.stderr[-2000:]
    finally:
        server.stop()
    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    charts = look_at(browser, run / "report.html", tmp_path / "real.png")
    assert [c["key"] for c in charts] == ["throughput", "latency"]
