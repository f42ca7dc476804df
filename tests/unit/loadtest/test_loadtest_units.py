"""The load test's pure parts: config checks, the schedule, arrivals, histogram merging, SLO verdicts."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
import subprocess
import sys
from pathlib import Path

import pytest

from sme.errors import ConfigError, UserError
from sme.loadtest import config
from sme.loadtest.payloads import BodyPicker
from sme.loadtest.shapes import ArrivalClock, Schedule
from sme.loadtest.slo import evaluate
from sme.loadtest.hdr import new_histogram
from sme.loadtest.stats import Recorder, Tally, clock_skew

BASE = "target: {url: 'http://127.0.0.1:9/x'}\npayload: {body: 'a'}\n"


def load(tmp_path: Path, text: str) -> config.LoadTest:
    path = tmp_path / "loadtest.yaml"
    path.write_text(text)
    return config.load(path)


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    return exc.value


# -- config: one clear error, naming the file and the field, before any load -------------------------

def test_an_unknown_target_kind_names_the_field(tmp_path):
    err = error(tmp_path, "target: {lambda: x}\npayload: {body: a}\nstages: [{duration: 1s, users: 1}]\n")
    assert "loadtest.yaml: target.lambda: unknown field" in err.message


def test_a_missing_payload_file_is_a_config_error(tmp_path):
    err = error(tmp_path, "target: {url: 'http://127.0.0.1:9/'}\npayload: {file: nope.csv}\n"
                          "stages: [{duration: 1s, users: 1}]\n")
    assert err.field == "payload.file" and "nope.csv" in err.message


def test_a_negative_rate_is_refused(tmp_path):
    err = error(tmp_path, BASE + "stages: [{duration: 1s, rate: -5}]\n")
    assert err.field == "stages[0].rate"


def test_a_ramp_longer_than_its_stage_is_refused(tmp_path):
    err = error(tmp_path, BASE + "stages: [{duration: 10s, users: 50, spawn_rate: 1}]\n")
    assert err.field == "stages[0].spawn_rate" and "50s" in err.message and "10s" in err.message
    err = error(tmp_path, BASE + "stages: [{duration: 10s, rate: 50, ramp: 20s}]\n")
    assert err.field == "stages[0].ramp"


def test_models_cannot_be_mixed(tmp_path):
    err = error(tmp_path, BASE + "stages: [{duration: 1s, users: 1}, {duration: 1s, rate: 5}]\n")
    assert err.field == "stages[1]"


def test_the_seed_shape_parses(tmp_path):
    lt = load(tmp_path, BASE + "stages:\n  - {duration: 10m, users: 50, spawn_rate: 1}\n"
                               "  - {duration: 110m, users: 200}\nslo: {p99_ms: 250, error_rate: 0.001}\n"
                               "processes: 2\n")
    assert lt.duration == 7200 and lt.processes == 2 and not lt.open
    assert [s.users for s in lt.stages] == [50, 200]


def test_an_endpoint_without_deploy_state_is_refused(tmp_path, monkeypatch):
    from sme.loadtest.targets import resolve

    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path / ".sme"))
    lt = load(tmp_path, "target: {endpoint: churn}\npayload: {body: a}\nstages: [{duration: 1s, users: 1}]\n")
    with pytest.raises(UserError) as exc:
        resolve(lt.target, lt.source)
    assert "target.endpoint" in exc.value.message and "no deploy state" in exc.value.message


def test_a_bad_config_exits_2_before_any_load(tmp_path):
    (tmp_path / "loadtest.yaml").write_text(BASE + "stages: [{duration: 1s, rate: -1}]\n")
    r = subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", "loadtest.yaml", "--out", "run"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "loadtest.yaml: stages[0].rate" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_step_ladder_expands_into_steps(tmp_path):
    lt = load(tmp_path, BASE + "stages:\n  - steps: {kind: rate, start: 50, step: 50, every: 2m, max: 200, "
                               "until_slo_breach: true}\nslo: {p99_ms: 100}\n")
    assert [s.rate for s in lt.stages] == [50, 100, 150, 200]
    assert all(s.kind == "step" and s.until_slo_breach for s in lt.stages)


# -- payloads -----------------------------------------------------------------------------------------

def test_csv_rows_jsonl_and_lines_split(tmp_path):
    (tmp_path / "rows.csv").write_text('a,b\n1,"x,y"\n3,4\n')
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    csv_lt = load(tmp_path, "target: {url: 'http://127.0.0.1:9/'}\n"
                            "payload: {file: rows.csv, split: csv, header: true}\nstages: [{duration: 1s, users: 1}]\n")
    assert csv_lt.payload.bodies == (b'1,"x,y"', b"3,4") and csv_lt.payload.content_type == "text/csv"
    jl = load(tmp_path, "target: {url: 'http://127.0.0.1:9/'}\npayload: {file: rows.jsonl, split: jsonl, "
                        "content_type: application/json}\nstages: [{duration: 1s, users: 1}]\n")
    assert [json.loads(b) for b in jl.payload.bodies] == [{"a": 1}, {"a": 2}]


def test_bodies_go_round_robin():
    picker = BodyPicker([b"a", b"b", b"c"])
    assert [picker.next() for _ in range(4)] == [b"a", b"b", b"c", b"a"]


# -- schedule and arrivals ----------------------------------------------------------------------------

def test_the_schedule_ticks_through_stages_and_ends():
    sched = Schedule(config._stages([{"duration": 10, "users": 5}, {"duration": 20, "users": 50}], "f"))
    assert sched.at(0).users == 5 and sched.at(9.9).stage == 0
    assert sched.at(10).users == 50 and sched.at(29.9).stage == 1 and sched.at(30) is None


def test_arrivals_are_exact_and_interleave_across_workers():
    sched = Schedule(config._stages([{"duration": 10, "rate": 100}], "f"))
    one = list(ArrivalClock(sched))
    assert len(one) == 1000 and one[1] == pytest.approx(0.01)
    parts = [list(ArrivalClock(sched, workers=3, index=i)) for i in range(3)]
    assert sum(len(p) for p in parts) == 1000
    assert sorted(t for p in parts for t in p) == pytest.approx(one)


def test_a_ramp_integrates_the_rate():
    sched = Schedule(config._stages([{"duration": 10, "rate": 100, "ramp": 10}], "f"))
    times = list(ArrivalClock(sched))
    assert len(times) == pytest.approx(500, abs=1)  # the area under a 0 -> 100/s ramp over 10 s
    assert sched.rate_at(5) == pytest.approx(50)


# -- statistics ---------------------------------------------------------------------------------------

def test_histograms_merge_exactly_across_processes():
    values = [(i % 997) * 0.37 + 0.5 for i in range(20_000)]
    whole, parts = Recorder(), [Recorder(), Recorder(), Recorder()]
    for i, v in enumerate(values):
        whole.record(1000 + i / 5000, v, None)
        parts[i % 3].record(1000 + i / 5000, v, "status:503" if i % 100 == 0 else None)
    single, merged = Tally(), Tally()
    single.add(whole.drain())
    for p in parts:
        merged.add(p.drain())
    a, b = single.whole, merged.whole
    assert a.requests == b.requests == 20_000 and b.failures == 200
    assert a.latency_ms() == b.latency_ms()
    assert merged.errors == {"status:503": 200}
    assert Tally.from_json(json.loads(json.dumps(merged.to_json()))).whole.latency_ms() == b.latency_ms()


def test_recorder_keeps_the_same_histogram_as_recording_each_value():
    """The recorder counts per HDR bucket instead of calling record_value per request: same counts, exactly."""
    import random

    rng = random.Random(7)
    latencies_ms = ([0.0, 0.0004, 0.001, 0.0015, 2.047, 2.048, 2.049, 4.095, 4.096, 3_600_000.0, 5_000_000.0]
                    + [rng.uniform(0, 20) for _ in range(20_000)]
                    + [10 ** rng.uniform(-3, 6.5) for _ in range(20_000)])
    rec, direct = Recorder(), new_histogram()
    for ms in latencies_ms:
        rec.record(1000.2, ms, None)
        # the nearest microsecond (halves up, in exact decimal arithmetic), within the histogram's 1 us - 1 h
        us = int(Decimal(ms).scaleb(3).to_integral_value(ROUND_HALF_UP))
        direct.record_value(min(max(us, 1), 3_600_000_000))
    tally = Tally()
    tally.add(rec.drain())
    kept = tally.whole.histogram()
    assert kept.get_total_count() == direct.get_total_count() == len(latencies_ms)
    assert list(kept.counts) == list(direct.counts)
    assert (kept.get_min_value(), kept.get_max_value()) == (direct.get_min_value(), direct.get_max_value())
    for p in (50, 90, 99, 99.9, 99.99):
        assert kept.get_value_at_percentile(p) == direct.get_value_at_percentile(p)


def test_a_latency_lands_in_the_hdr_bucket_worked_out_by_hand():
    """3 significant digits: microseconds below 2,048 are exact; [2048, 4096) us in buckets of 2 us, [4096,
    8192) of 4 us, ..., and [2^31, 2^32) us of 2^21 us; a bucket is named by its lowest value."""
    cases = {0.0: 1, 0.0004: 1, 0.0015: 2, 1.0: 1000, 2.047: 2047, 2.049: 2048, 4.095: 4094, 4.096: 4096,
             4.099: 4096, 100.0: 99_968, 3_600_000.0: 1716 * 2 ** 21, 5_000_000.0: 1716 * 2 ** 21}
    for ms, bucket in cases.items():
        rec = Recorder()
        rec.record(1000.0, ms, None)
        [(_, (counts, n, f))] = rec.drain(wire=False)["seconds"].items()
        assert counts == {bucket: 1} and (n, f) == (1, 0), (ms, counts)


def test_a_worker_with_a_skewed_clock_records_in_the_masters_seconds():
    assert clock_skew(None, 1000.0) == 0.0
    assert clock_skew(1000.0, 1000.03) == 0.0, "a message's trip is not a skew"
    assert clock_skew(1000.0, 1003.5) == pytest.approx(3.5)
    assert clock_skew(1000.0, 998.0) == pytest.approx(-2.0)
    rec = Recorder()
    rec.offset = clock_skew(1000.0, 1003.5)  # this worker's clock runs 3.5 s ahead
    rec.record(1013.6, 5.0, None)  # 1013.6 on this clock is 1010.1 on the master's
    rec.drop(1014.0)
    batch = rec.drain()
    assert list(batch["seconds"]) == ["1010"] and batch["dropped"] == {"1010": 1}


def test_percentiles_have_three_significant_digits():
    h = new_histogram()
    for v in range(1, 100_001):
        h.record_value(v)
    assert h.get_value_at_percentile(99) == pytest.approx(99_000, rel=1e-3)


# -- SLO ----------------------------------------------------------------------------------------------

def test_slo_checks_each_limit():
    verdict = evaluate({"p99_ms": 250, "error_rate": 0.001, "min_rps": 150}, requests=10_000, failures=20,
                       dropped=0, duration_s=50, latency_ms={"p99": 120.0})
    by_name = {c["name"]: c for c in verdict["checks"]}
    assert by_name["p99_ms"]["passed"] and by_name["min_rps"]["passed"] and not by_name["error_rate"]["passed"]
    assert verdict["passed"] is False
    assert evaluate({"p99_ms": 250}, 0, 0, 0, 10, {"p99": None})["passed"] is False


def test_the_cli_never_imports_locust():
    code = ("import sys; from sme.cli import run; run(['loadtest', '--help']); "
            "import sme.loadtest.runner, sme.loadtest.results; "
            "assert 'locust' not in sys.modules and 'gevent' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("token", [None, "session-token"])
def test_the_fast_signer_signs_exactly_like_botocore(token):
    import time as _time

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from sme.loadtest.sigv4 import InvokeSigner

    creds = Credentials("AKIDEXAMPLE", "secret", token)
    url = "http://127.0.0.1:5000/endpoints/churn-ep/invocations"
    fixed = _time.gmtime(1_790_000_000)
    ours = InvokeSigner(creds, url, "eu-west-1", content_type="text/csv", clock=lambda: fixed).headers(b"1,2")
    req = AWSRequest(method="POST", url=url, data=b"1,2", headers={"Content-Type": "text/csv"})
    auth = SigV4Auth(creds, "sagemaker", "eu-west-1")
    req.context["timestamp"] = ours["X-Amz-Date"]
    auth._modify_request_before_signing(req)
    expected = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert ours.get("X-Amz-Security-Token") == token


def test_durations_in_the_live_line_read_right_even_below_zero():
    from sme.units import format_duration

    assert [format_duration(s) for s in (0, 59.6, 61, 3725, -1.2)] == ["0s", "1m00s", "1m01s", "1h02m05s", "-1s"]
