"""The local model runtime as real processes on 127.0.0.1: what a SageMaker container would answer.

Predictions are checked against xgboost's own in-process `predict` on the same rows.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from sme.net import free_port

from sme.errors import WaitTimeout
from sme.local.demo_model import build_demo_model
from sme.local.runtime import RuntimeFailed, start_runtime

pytestmark = pytest.mark.timeout(60)
READY_TIMEOUT = 30


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def booster(demo, tmp_path_factory):
    import xgboost as xgb

    out = tmp_path_factory.mktemp("reference")
    with tarfile.open(demo.model_tar) as tar:
        tar.extractall(out, filter="data")
    model = xgb.Booster()
    model.load_model(bytearray((out / "xgboost-model").read_bytes()))
    return model


@pytest.fixture(scope="module")
def rows(demo):
    return np.loadtxt(demo.payload_csv, delimiter=",")[:40]


@pytest.fixture(scope="module")
def xgb_runtime(demo):
    """Port and worker count from the container's environment variables, as SageMaker sets them."""
    port = free_port()
    runtime = start_runtime(demo.model_tar, port=None, workers=None,
                            env={"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    try:
        runtime.wait_ready(READY_TIMEOUT)
        yield runtime
    finally:
        runtime.stop()


def _pack(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    """A model.tar.gz with these members (name -> content)."""
    import io

    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _model_json(demo) -> bytes:
    with tarfile.open(demo.model_tar) as tar:
        return tar.extractfile("xgboost-model").read()


def post(runtime, body, content_type="text/csv", accept=None, path="/invocations", method="POST"):
    conn = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=10)
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response, payload


def csv_line(row) -> str:
    return ",".join(map(repr, np.asarray(row).tolist()))


# ---------------------------------------------------------------- built-in XGBoost convention


def test_csv_single_row_requests_match_in_process_predict(xgb_runtime, booster, rows):
    import xgboost as xgb

    expected = booster.predict(xgb.DMatrix(rows[:8]))
    got = []
    for row in rows[:8]:
        response, body = post(xgb_runtime, csv_line(row))
        assert response.status == 200, body
        assert response.getheader("Content-Type") == "text/csv; charset=utf-8"
        assert body.endswith(b"\n") and body.count(b"\n") == 1, "one prediction, one line"
        got.append(float(body))
    np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg="runtime CSV predictions differ from xgboost's")


def test_csv_many_rows_in_one_request(xgb_runtime, booster, rows):
    import xgboost as xgb

    response, body = post(xgb_runtime, "\n".join(csv_line(r) for r in rows) + "\n")
    assert response.status == 200, body
    got = [float(v) for v in body.decode().splitlines()]  # one prediction per line, as the container answers
    np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(rows)), rtol=1e-6)


def test_json_input_is_refused_as_the_container_does(xgb_runtime, rows):
    """The XGBoost container reads CSV, libsvm and recordio-protobuf only; SME_LENIENT_INPUT opts in to JSON."""
    response, body = post(xgb_runtime, json.dumps({"instances": rows[:2].tolist()}), content_type="application/json")
    assert response.status == 415, body
    assert b"text/csv" in body


def test_libsvm_input_with_missing_features_and_labels(xgb_runtime, booster, rows):
    """Absent columns are missing values (not zeros), a leading label is ignored, indexes are 0-based."""
    import xgboost as xgb

    sample = rows[:6].copy()
    sample[:, ::3] = np.nan  # drop every third feature
    lines = []
    for i, row in enumerate(sample):
        pairs = " ".join(f"{j}:{v!r}" for j, v in enumerate(row.tolist()) if not np.isnan(v))
        lines.append(f"{i % 2} {pairs}" if i % 2 else pairs)
    response, body = post(xgb_runtime, "\n".join(lines), content_type="text/libsvm", accept="application/json")
    assert response.status == 200, body
    assert response.getheader("Content-Type") == "application/json"
    got = [p["score"] for p in json.loads(body)["predictions"]]
    np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(sample, missing=np.nan)), rtol=1e-6)


def test_accept_picks_the_response_type(xgb_runtime, booster, rows):
    import xgboost as xgb

    response, body = post(xgb_runtime, csv_line(rows[0]), accept="application/json")
    assert response.getheader("Content-Type") == "application/json"
    expected = float(booster.predict(xgb.DMatrix(rows[:1]))[0])
    assert json.loads(body)["predictions"][0]["score"] == pytest.approx(expected, rel=1e-6)
    response, body = post(xgb_runtime, csv_line(rows[0]), accept="*/*")
    assert response.getheader("Content-Type") == "text/csv; charset=utf-8"


@pytest.mark.parametrize("body, content_type, accept, status, reason", [
    (",".join(["1"] * 31), "text/csv", None, 400, "31 columns but the model has 30 features"),
    ("a,b", "text/csv", None, 415, "csv format"),
    ("", "text/csv", None, 204, ""),
    ("{not json", "application/json", None, 415, "application/json is not an accepted ContentType"),
    ("0:1 x:2", "text/libsvm", None, 415, "libsvm format"),
    ("0:1 99:2", "text/libsvm", None, 400, "100 columns but the model has 30 features"),
    ("1", "image/png", None, 415, "image/png"),
    ("1", "text/csv", "image/png", 406, "image/png"),
])
def test_bad_requests_get_the_containers_status_with_the_reason(xgb_runtime, body, content_type, accept, status, reason):
    response, payload = post(xgb_runtime, body, content_type=content_type, accept=accept)
    assert response.status == status, payload
    assert reason in payload.decode()


def test_contract_paths(xgb_runtime):
    response, _ = post(xgb_runtime, None, path="/ping", method="GET")
    assert response.status == 200
    response, _ = post(xgb_runtime, None, method="GET")
    assert response.status == 405
    response, _ = post(xgb_runtime, "x", path="/nope")
    assert response.status == 404


def test_each_invocation_reports_model_latency(xgb_runtime, rows):
    started = time.perf_counter()
    response, _ = post(xgb_runtime, csv_line(rows[0]))
    wall_us = (time.perf_counter() - started) * 1e6
    latency_us = int(response.getheader("X-Model-Latency-Us"))
    assert 0 < latency_us < wall_us, f"model latency {latency_us} us should be within the request's {wall_us:.0f} us"


def test_workers_and_port_come_from_sagemaker_environment(xgb_runtime):
    import psutil

    assert xgb_runtime.ready_info["workers"] == 2
    assert len(psutil.Process(xgb_runtime.pid).children()) == 2, "one OS process per worker expected"
    assert xgb_runtime.ready_info["pid"] == xgb_runtime.pid
    assert xgb_runtime.ready_info["convention"] == "xgboost"


# ---------------------------------------------------------------- inference toolkit convention

CUSTOM_SCRIPT = '''
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.json")) as f:
        return json.load(f)

def input_fn(request_body, content_type):
    assert content_type == "application/json", content_type
    return json.loads(request_body)

def predict_fn(data, model):
    if data.get("boom"):
        raise ValueError("the model exploded on purpose")
    return sum(w * x for w, x in zip(model["weights"], data["x"]))

def output_fn(prediction, accept):
    return json.dumps({"y": prediction, "pid": os.getpid()}), "application/json"
'''


@pytest.fixture(scope="module")
def script_runtime(tmp_path_factory):
    tar = _pack(tmp_path_factory.mktemp("script"), {
        "weights.json": json.dumps({"weights": [1.0, 2.0, 3.0]}),
        "code/inference.py": CUSTOM_SCRIPT,
        "code/requirements.txt": "scikit-learn==1.4.0\n# a comment\nnot-a-real-package-sme\n",
    })
    runtime = start_runtime(tar, workers=1, env={"MAX_CONTENT_LENGTH": "1000"})
    try:
        runtime.wait_ready(READY_TIMEOUT)
        yield runtime
    finally:
        runtime.stop()


def test_custom_handlers_serve_requests(script_runtime):
    response, body = post(script_runtime, json.dumps({"x": [1, 1, 2]}), content_type="application/json")
    assert response.status == 200, body
    assert json.loads(body)["y"] == 9.0
    assert response.getheader("Content-Type") == "application/json"
    assert int(response.getheader("X-Model-Latency-Us")) >= 0


def test_requirements_are_reported_not_installed(script_runtime):
    assert script_runtime.ready_info["convention"] == "inference-script"
    assert script_runtime.ready_info["requirements"] == ["scikit-learn==1.4.0", "not-a-real-package-sme"]
    assert "local mode does not install" in script_runtime.log_path.read_text()


def test_handler_that_raises_gives_500_and_the_worker_survives(script_runtime):
    _, body = post(script_runtime, json.dumps({"x": [1]}), content_type="application/json")
    pid_before = json.loads(body)["pid"]
    response, body = post(script_runtime, json.dumps({"boom": True}), content_type="application/json")
    assert response.status == 500
    assert b"the model exploded on purpose" in body
    response, body = post(script_runtime, json.dumps({"x": [2]}), content_type="application/json")
    assert response.status == 200
    assert json.loads(body)["pid"] == pid_before, "the same worker process should still be serving"
    assert "the model exploded on purpose" in script_runtime.log_path.read_text(), "the reason should be logged"


def test_invocation_past_the_model_server_timeout_restarts_the_worker(tmp_path):
    script = (
        "import os, time\n"
        "def model_fn(model_dir):\n    return None\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    time.sleep(float(body))\n    return str(os.getpid())\n"
    )
    runtime = start_runtime(_pack(tmp_path, {"code/inference.py": script}), workers=1,
                            env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})
    try:
        runtime.wait_ready(READY_TIMEOUT)
        _, first_pid = post(runtime, "0")
        started = time.monotonic()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            post(runtime, "20")
        assert time.monotonic() - started < 10, "the slow request should be cut off near the 1 s timeout"
        deadline = time.monotonic() + 15
        while True:  # gunicorn starts a new worker; until then the port may refuse or hang up
            try:
                response, pid = post(runtime, "0")
                break
            except (ConnectionError, http.client.HTTPException):
                assert time.monotonic() < deadline, "no worker came back after the timeout"
                time.sleep(0.1)
        assert response.status == 200 and pid != first_pid, "a fresh worker should serve after the timeout"
        assert "model server timeout" in runtime.log_path.read_text()
    finally:
        runtime.stop()


def test_payload_over_the_limit_gets_413(script_runtime):
    response, body = post(script_runtime, json.dumps({"x": [0] * 600}), content_type="application/json")
    assert response.status == 413, body


def test_default_handlers_fill_in_what_the_script_leaves_out(demo, booster, rows, tmp_path):
    """Only output_fn is defined: model_fn loads xgboost-model, input_fn parses CSV, predict_fn predicts."""
    import xgboost as xgb

    script = "def output_fn(prediction, accept):\n    return ';'.join(str(float(p)) for p in prediction)\n"
    tar = _pack(tmp_path, {"xgboost-model": _model_json(demo), "code/inference.py": script})
    runtime = start_runtime(tar, workers=1)
    try:
        runtime.wait_ready(READY_TIMEOUT)
        response, body = post(runtime, "\n".join(csv_line(r) for r in rows[:4]))
        assert response.status == 200, body
        got = [float(v) for v in body.decode().split(";")]
        np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(rows[:4])), rtol=1e-6)
    finally:
        runtime.stop()


# ---------------------------------------------------------------- artifacts that cannot be served


def _expect_failed(tar: Path, reason: str, env: dict | None = None) -> None:
    runtime = start_runtime(tar, workers=1, env=env)
    try:
        with pytest.raises(RuntimeFailed) as failure:
            runtime.wait_ready(READY_TIMEOUT)
        assert reason in failure.value.reason
        runtime._popen.wait(10)
        assert runtime._popen.returncode != 0, "a runtime that cannot serve should exit non-zero"
    finally:
        runtime.stop()


def test_file_that_is_not_a_model_fails_with_the_reason(tmp_path):
    _expect_failed(_pack(tmp_path, {"xgboost-model": "this is not a booster"}), "xgboost-model is not an XGBoost model")


def test_path_traversal_member_is_refused(tmp_path):
    escape = tmp_path / "escaped"
    _expect_failed(_pack(tmp_path, {"../escaped": "x"}), "outside the model directory")
    assert not escape.exists()


def test_script_whose_model_fn_raises_fails_with_the_reason(tmp_path):
    script = "def model_fn(model_dir):\n    raise RuntimeError('weights.bin is missing')\n"
    _expect_failed(_pack(tmp_path, {"code/inference.py": script}), "weights.bin is missing")


def test_script_that_does_not_import_fails_with_the_reason(tmp_path):
    _expect_failed(_pack(tmp_path, {"code/inference.py": "def model_fn(:\n"}), "SyntaxError")


def test_missing_program_named_by_environment(tmp_path, demo):
    _expect_failed(_pack(tmp_path, {"xgboost-model": _model_json(demo)}), "serve.py",
                   env={"SAGEMAKER_PROGRAM": "serve.py"})


def test_cli_reports_failure_on_stderr_and_in_status_file(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    status = tmp_path / "status.json"
    done = subprocess.run([sys.executable, "-m", "sme.local.runtime", "--model-data", str(bad), "--port", "0",
                           "--status-file", str(status)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "not a readable tar archive" in done.stderr
    assert json.loads(status.read_text())["state"] == "failed"
    assert "not a readable tar archive" in json.loads(status.read_text())["reason"]


def test_wait_ready_times_out_with_a_hint(tmp_path):
    script = "import time\ndef model_fn(model_dir):\n    time.sleep(30)\n"
    runtime = start_runtime(_pack(tmp_path, {"code/inference.py": script}), workers=1)
    try:
        with pytest.raises(WaitTimeout) as timeout:
            runtime.wait_ready(0.5)
        assert "runtime.log" in timeout.value.render()
        assert runtime.alive()
    finally:
        runtime.stop(grace=2)
    assert not runtime.alive()


def test_runtime_stops_when_its_parent_goes_away(tmp_path, request):
    tar = _pack(tmp_path, {"code/inference.py": "def model_fn(model_dir):\n    return 1\n"})
    starter = (
        "import sys, json; from pathlib import Path; from sme.local.runtime import start_runtime\n"
        f"r = start_runtime(Path({str(tar)!r}), workers=1); r.wait_ready(30); print(r.pid, r.workdir, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=40)
    assert done.returncode == 0, done.stderr
    pid, workdir = done.stdout.split()
    pid = int(pid)
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    assert not _running(pid), "an orphaned runtime should stop by itself"


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
