"""`sme plan-capacity`: the knee of a real step run, and the arithmetic against hand-computed values."""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.runs import write_loadtest, write_recorded_run, write_watch  # noqa: E402

from sme.capacity import cost_per_million, plan  # noqa: E402
from sme.loadtest.config import Stage  # noqa: E402
from sme.loadtest.stats import new_histogram  # noqa: E402
from sme.report.rundir import load_run  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def sme(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", *args], capture_output=True, text=True, timeout=90, env=env)


class KneeServer:
    """Answers in 2 ms while it has seen at most ``knee_rps`` requests in the last second, 1 s above.

    The slow answer is far above the SLO and the fast one far below, so the client's own jitter on a busy
    machine (tens of ms) cannot move the knee.
    """

    def __init__(self, knee_rps: int):
        arrivals: collections.deque[float] = collections.deque()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                with lock:
                    arrivals.append(now)
                    while arrivals and arrivals[0] < now - 1.0:
                        arrivals.popleft()
                    busy = len(arrivals) > knee_rps
                time.sleep(1.0 if busy else 0.002)
                body = b'{"predictions": [0.5]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_plan_finds_the_knee_of_a_real_step_run_within_one_step(tmp_path: Path) -> None:
    knee, step = 50, 20
    server = KneeServer(knee)
    try:
        cfg = tmp_path / "steps.yaml"
        cfg.write_text(f"target: {{url: \"{server.url}/invocations\"}}\n"
                       "payload: {body: '{\"x\": 1}', content_type: application/json}\n"
                       f"stages:\n  - steps: {{kind: rate, start: {step}, step: {step}, every: 4s, count: 4}}\n"
                       "slo: {p99_ms: 400}\n")
        run = tmp_path / "step-1"
        lt = sme("loadtest", "-c", str(cfg), "--out", str(run))
        assert lt.returncode in (0, 3), lt.stderr[-2000:]
    finally:
        server.stop()
    done = sme("plan-capacity", str(run), "--peak-rps", "2000", "--p99-ms", "400", "--instances", "1",
               "--instance-type", "ml.m5.large", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    found = result["rps_per_instance"]
    assert abs(found - knee) <= step, f"knee at {knee} req/s, found {found:.1f} (steps: {result['steps']})"
    held = [s["held"] for s in result["steps"]]
    assert held[0] and not held[-1], f"the first step must hold and the last (80 req/s) break: {result['steps']}"
    assert result["basis"] == "summary.json (steady seconds of each step)"
    with open(run / "timeseries.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    stages = json.loads((run / "summary.json").read_text())["stages"]
    for stage in stages[:-1]:  # (the last one reached also counts the seconds after the end)
        mine = [r for r in rows if r["stage"] == str(stage["index"])]
        steady = stage["steady"]
        assert (steady["seconds"], steady["requests"]) == (len(mine) - 2, sum(int(r["requests"]) for r in mine[1:-1])), \
            f"stage {stage['index']}: its steady numbers are its rows but the first and last"


def hand_run(tmp_path: Path, **kw) -> Path:
    """Steps of 40, 80, 120, 160 req/s for 20 s; p99 breaks 250 ms only past 130 req/s."""
    run = tmp_path / "hand"
    write_loadtest(run, [(20.0, 40.0), (20.0, 80.0), (20.0, 120.0), (20.0, 200.0)], knee=130.0, kind="step", **kw)
    return run


def test_arithmetic_matches_hand_computed_values(tmp_path: Path) -> None:
    done = sme("plan-capacity", str(hand_run(tmp_path)), "--peak-rps", "2000", "--p99-ms", "250",
               "--instances", "2", "--instance-type", "ml.m5.large", "--prices", "table", "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    # knee: step 3, 120 req/s on 2 instances -> 60 req/s per instance
    assert r["knee_step"] == 3
    assert r["rps_per_instance"] == pytest.approx(60.0)
    assert r["target_invocations_per_instance"] == pytest.approx(1800.0)  # 60 req/s x safety 0.5 x 60 s
    assert r["instances_at_peak"] == 67  # ceil(2000 / 30)
    assert r["instances_no_headroom"] == 34  # ceil(2000 / 60)
    assert r["price"]["usd_per_hour"] == pytest.approx(0.115)
    assert "price table" in r["price"]["source"]
    assert r["cost"]["usd_per_hour_at_peak"] == pytest.approx(7.705)  # 67 x $0.115
    assert r["cost"]["usd_per_hour_at_minimum"] == pytest.approx(0.115)
    # $7.705 an hour for 2000 x 3600 = 7.2 M inferences an hour: $1.0701 per million
    assert r["cost"]["usd_per_million_inferences_at_peak"] == pytest.approx(1.070139, abs=1e-6)


def test_text_output_names_the_price_source_and_the_formula(tmp_path: Path) -> None:
    done = sme("plan-capacity", str(hand_run(tmp_path)), "--peak-rps", "2000", "--p99-ms", "250",
               "--instances", "2", "--instance-type", "ml.m5.large", "--safety", "0.6")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "InvocationsPerInstance = 60.00 x 0.6 x 60 = 2160.0" in out, out
    assert "instances for the peak of 2000 req/s: 56" in out, out  # ceil(2000 / 36)
    assert "sme's price table" in out and "did not answer" in out, out  # no AWS here: the table, and why


def test_per_step_fields_of_the_summary_are_used_without_a_timeseries(tmp_path: Path) -> None:
    run = hand_run(tmp_path, steady=False)  # an older sme's summary, and its timeseries.csv is lost
    (run / "timeseries.csv").unlink()
    p = plan(load_run(run), 2000, 250, 0.5, 2, 1, None)
    assert p.basis == "summary.json per-step stats"
    assert p.knee is not None and p.knee.step.number == 3
    assert p.per_instance == pytest.approx(60.0)


def test_instances_come_from_the_watch_file(tmp_path: Path) -> None:
    run = hand_run(tmp_path)
    write_watch(run / "watch.jsonl", 80, interval=5, scale_out_at=None, instances=3)
    p = plan(load_run(run), 2000, 250, 0.5, None, 1, None)
    assert p.instances_from == "from the watch file"
    assert p.per_instance == pytest.approx(40.0)  # 120 req/s on 3 instances


def test_errors_past_the_budget_break_a_step(tmp_path: Path) -> None:
    run = tmp_path / "errors"
    write_loadtest(run, [(20.0, 40.0), (20.0, 80.0)], kind="step", fail_every=20)  # 5% errors everywhere
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert p.knee is None and "errors 5.00% > 1.00%" in p.steps[0].why
    assert plan(load_run(run), 100, 250, 0.5, 1, 1, 0.1).knee is not None  # within a 10% budget


def test_no_successful_request_exits_3_with_the_reason(tmp_path: Path) -> None:
    run = tmp_path / "dead"
    write_loadtest(run, [(10.0, 40.0), (10.0, 80.0)], kind="step", fail_every=1)
    done = sme("plan-capacity", str(run), "--peak-rps", "100", "--p99-ms", "250")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no successful request" in done.stdout and "no step held the SLO" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--safety", "1.5"], "--safety"),
    (["--peak-rps", "0"], "--peak-rps"),
])
def test_bad_flags_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    base = {"--peak-rps": "100", "--p99-ms": "250"}
    base.update(dict(zip(args[::2], args[1::2])))
    flat = [x for kv in base.items() for x in kv]
    done = sme("plan-capacity", str(hand_run(tmp_path)), *flat)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_run_without_a_load_test_cannot_be_planned(tmp_path: Path) -> None:
    run = tmp_path / "watch-only"
    write_watch(run / "watch.jsonl", 60)
    done = sme("plan-capacity", str(run), "--peak-rps", "100", "--p99-ms", "250")
    assert done.returncode == 2 and "no load-test results" in done.stderr, done.stderr


def test_cost_per_million_formula() -> None:
    assert cost_per_million(3.6, 1.0) == pytest.approx(1000.0)  # $3.60/h serving 3,600 requests an hour
    assert math.isclose(cost_per_million(7.705, 2000), 1.0701388888888889)


def test_knee_is_the_best_rate_per_instance_held_before_the_first_break(tmp_path: Path) -> None:
    run = tmp_path / "updown"
    write_loadtest(run, [(20.0, 100.0), (20.0, 300.0), (20.0, 100.0)], kind="rate")  # flat latency: all hold
    p = plan(load_run(run), 1000, 250, 0.5, 2, 1, None)
    assert p.knee is not None and p.knee.step.number == 2 and p.per_instance == pytest.approx(150.0)
    assert any("knee is above the highest step" in n for n in p.notes)


def test_a_bad_instance_type_is_a_usage_error(tmp_path: Path) -> None:
    done = sme("plan-capacity", str(hand_run(tmp_path)), "--peak-rps", "100", "--p99-ms", "250",
               "--instance-type", "m5.large")
    assert done.returncode == 2 and "not a SageMaker instance type" in done.stderr, done.stderr


def a_second(n: int, ms: float, slow: int = 0, slow_ms: float = 400.0) -> list[float]:
    return [ms] * (n - slow) + [slow_ms] * slow


def test_a_steps_p99_is_its_steady_seconds_histograms_not_the_mean_of_their_p99s(tmp_path: Path) -> None:
    """Step 2's steady seconds (7-10) hold 800 requests, 10 of them slow, all in second 10: their p99 is
    400 ms, over the 250 ms SLO; the mean of the four seconds' p99s, weighted by requests, is ~115 ms."""
    stages = [Stage(6, rate=100, kind="step"), Stage(6, rate=200, kind="step")]
    seconds = [a_second(100, 10.0)] * 6 + [a_second(200, 300.0)] + [a_second(200, 20.0)] * 3 + [
        a_second(200, 20.0, slow=10), a_second(200, 300.0)]
    run = tmp_path / "hand"
    write_recorded_run(run, stages, seconds)
    truth = new_histogram()  # the oracle: hdrh itself, over the steady seconds' latencies only
    for ms in [x for sec in seconds[7:11] for x in sec]:
        truth.record_value(int(ms * 1000))
    true_p99 = truth.get_value_at_percentile(99) / 1000.0
    assert 400.0 <= true_p99 <= 400.0 * 1.001

    p = plan(load_run(run), 1000, 250, 0.5, 1, 1, None)
    assert p.basis == "summary.json (steady seconds of each step)"
    step2 = p.steps[1]
    assert step2.step.p99_ms == true_p99 and not step2.held and "p99 400.1 ms > 250 ms" in step2.why
    assert (step2.step.requests, step2.step.rps) == (800, 200.0), "steady seconds 7-10 only"
    assert p.knee is not None and p.knee.step.number == 1 and p.per_instance == pytest.approx(100.0)
    assert not any("approximated" in n for n in p.notes)

    summary = json.loads((run / "summary.json").read_text())  # as an older sme wrote it: no steady numbers
    for stage in summary["stages"]:
        del stage["steady"]
    (run / "summary.json").write_text(json.dumps(summary))
    old = plan(load_run(run), 1000, 250, 0.5, 1, 1, None)
    mean = (3 * 200 * 20.0 + 200 * 400.0) / 800
    assert old.basis.startswith("timeseries.csv")
    assert old.steps[1].step.p99_ms == pytest.approx(mean, rel=0.002) and old.knee.step.number == 2
    assert any("approximated as the request-weighted mean" in n for n in old.notes), old.notes


def test_steady_numbers_add_up_with_the_edge_seconds_to_the_stage(tmp_path: Path) -> None:
    stages = [Stage(5, rate=40, kind="step"), Stage(3, rate=80, kind="step")]
    seconds = [a_second(40 + k, 5.0 + k) for k in range(5)] + [a_second(80, 7.0)] * 3
    s = write_recorded_run(tmp_path / "run", stages, seconds)
    first, second = s["stages"]
    assert first["steady"]["seconds"] == 3 and first["steady"]["requests"] == 41 + 42 + 43
    assert first["requests"] == sum(40 + k for k in range(5)), "the stage still counts every second"
    assert first["steady"]["latency_ms"]["p99"] == pytest.approx(8.0, abs=0.01), "second 3's 8 ms is the top"
    assert second["steady"]["seconds"] == 3 and second["steady"]["requests"] == second["requests"] == 240, \
        "a 3-second step is too short to leave seconds out"
