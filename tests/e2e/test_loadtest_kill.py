"""A run that is killed keeps what it measured: `sme loadtest` as a subprocess, real Locust, a counting
HTTP server on 127.0.0.1 (tests/support/httpserver.py).

SIGKILL of sme and its load process together (an OOM kill, a lost machine) leaves a timeseries.csv whose
rows add up to what the server counted, give or take the second in progress, and a summary.json marked
partial and in progress. SIGKILL of sme alone lets the load process end the run and write a final summary
that reconciles exactly.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.httpserver import CountingServer  # noqa: E402

pytestmark = pytest.mark.timeout(120)
RATE = 100


@pytest.fixture(scope="module")
def server():
    with CountingServer.start_process() as srv:
        yield srv


@pytest.fixture
def run(server, tmp_path):
    server.reset()
    (tmp_path / "loadtest.yaml").write_text(
        f"target: {{url: '{server.url}/invocations'}}\npayload: {{body: '1,2,3', content_type: text/csv}}\n"
        f"stages:\n  - {{duration: 60s, rate: {RATE}}}\nopen_model: {{max_in_flight: 50}}\n")
    env = dict(os.environ, SME_STATE_DIR=str(tmp_path / ".sme"), PYTHONUNBUFFERED="1")
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "sme", "loadtest", "-c", "loadtest.yaml", "--out", "run"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, tmp_path / "run"
    for p in [proc, *_load_processes(proc)]:
        if p.poll() is None if isinstance(p, subprocess.Popen) else p.is_running():
            p.kill()


def _load_processes(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for_requests(server: CountingServer, n: int) -> None:
    deadline = time.monotonic() + 40
    while server.stats()["requests"] < n:
        assert time.monotonic() < deadline, f"the server saw fewer than {n} requests"
        time.sleep(0.1)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigkill_of_sme_and_its_load_process_keeps_the_seconds_measured(server, run):
    proc, out = run
    _wait_for_requests(server, 7 * RATE)  # past the first refresh of summary.json (every 5 s)
    time.sleep(0.85)  # late in a second: its row, and most of the one before, are not written yet
    children = _load_processes(proc)
    assert children, "sme runs its load in a child process"
    for p in children:
        os.kill(p.pid, signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=10)
    time.sleep(0.3)  # replies in flight land at the server, none is sent any more
    counted = server.stats()["requests"]
    rows = _rows(out / "timeseries.csv")
    in_rows = sum(int(r["requests"]) for r in rows)
    assert counted - RATE * 1.1 <= in_rows <= counted, \
        f"the rows hold {in_rows} requests, the server counted {counted}: more than a second apart"
    assert len(rows) >= 6 and all(r["p99_ms"] for r in rows[1:]), rows
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and summary["in_progress"] is True
    assert 0 < summary["requests"] <= in_rows


def test_sigkill_of_sme_alone_lets_the_load_process_write_a_final_summary(server, run):
    proc, out = run
    _wait_for_requests(server, 3 * RATE)
    children = _load_processes(proc)
    proc.kill()
    proc.communicate(timeout=10)
    psutil.wait_procs(children, timeout=30)
    assert not any(p.is_running() for p in children), "the load process stops when sme dies"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and summary["in_progress"] is False
    assert summary["requests"] == server.stats()["requests"], "the graceful stop reconciles exactly"
    assert sum(int(r["requests"]) for r in _rows(out / "timeseries.csv")) == summary["requests"]
    assert sum(st["requests"] for st in summary["stages"]) == summary["requests"]
