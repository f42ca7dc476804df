"""Bad input, as an adversary writes it: every value exits 2 with the file, the field and the fix on one
line, and nothing reaches AWS (the moto server's recorder sees no call) or the load target.

The CLI runs as a subprocess; each refusal costs ~0.2 s because it happens before boto3 is imported.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import ACCOUNT
from tests.e2e.test_deploy import model_tar  # noqa: F401  (fixture)
from tests.e2e.test_loadtest import server, srv  # noqa: F401  (fixtures: a counting HTTP server, reset)
from tests.e2e.test_watch import make_endpoint
from tests.support.httpserver import CountingServer

pytestmark = pytest.mark.timeout(120)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"


def refused(result, *words):
    """Exit 2, one line naming what is wrong and how to fix it, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "(fix: " in lines[0], f"no fix in {lines[0]!r}"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def nothing_sent(moto):
    assert list(moto.recorder.calls) == [], f"calls reached AWS: {[c.operation for c in moto.recorder.calls]}"


# -- experiment files ------------------------------------------------------------------------------------
def experiment(model: Path, **replace: str) -> str:
    text = f"""name: churn
region: us-east-1
model:
  image: xgboost:1.7-1
  model_data: {model}
  role: {ROLE}
endpoint:
  variants: [{{name: AllTraffic, instance_type: ml.m5.large, count: 1, weight: 1}}]
tags: {{team: ml}}
"""
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def tar_with(path: Path, *members: tuple[str, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


EXPERIMENT_CASES = {
    "name ending in a newline": ({"name: churn": 'name: "churn\\n"'}, ["name:", "churn\\n", "letters, digits"]),
    "region ending in a newline": ({"region: us-east-1": 'region: "us-east-1\\n"'}, ["region:", "us-east-1"]),
    "subnet ending in a newline": ({"tags:": 'network: {subnets: ["subnet-0a1b2c3d\\n"], security_groups: '
                                             '[sg-0a1b2c3d]}\ntags:'}, ["network.subnets[0]", "subnet-0a1b2c3d"]),
    "weight NaN": ({"weight: 1": "weight: .nan"}, ["endpoint.variants[0].weight", "nan", "finite"]),
    "weight infinity": ({"weight: 1": "weight: .inf"}, ["endpoint.variants[0].weight", "inf"]),
    "count infinity": ({"count: 1": "count: -.inf"}, ["endpoint.variants[0].count", "inf"]),
    "tag value of 257 characters": ({"team: ml": "team: " + "x" * 257}, ["tags.team", "257 characters", "256"]),
    "tag key with NUL": ({"team: ml": '"te\\0am": ml'}, ["tags.", "\\x00", "letters, digits"]),
    "tag value with a newline": ({"team: ml": 'team: "ml\\n"'}, ["tags.team", "\\n"]),
    "tag key reserved by AWS": ({"team: ml": "AWS:team: ml"}, ["tags", "AWS:team", "aws:"]),
    "empty environment key": ({f"role: {ROLE}": f'role: {ROLE}\n  environment: {{"": x}}'},
                              ["model.environment", "''", "letters, digits and underscores"]),
    "environment key with a space": ({f"role: {ROLE}": f'role: {ROLE}\n  environment: {{"A B": x}}'},
                                     ["model.environment", "'A B'"]),
    "model_data /etc/passwd": ({"MODEL": "/etc/passwd"}, ["model.model_data", "/etc/passwd", "gzip"]),
    "model_data a directory": ({"MODEL": "/tmp"}, ["model.model_data", "not a regular file"]),
    "model_data /dev/zero": ({"MODEL": "/dev/zero"}, ["model.model_data", "not a regular file"]),
    "model_data s3 without a bucket": ({"MODEL": "s3:///key"}, ["model.model_data", "s3:///key", "s3://bucket/key"]),
    "a 5,000-deep list": ({"tags: {team: ml}": "tags: " + "[" * 5000 + "]" * 5000}, ["nested more than 32"]),
    "top-level keys of mixed types": ({"name: churn": "1: one\nname: churn"}, ["1: a key must be text", "quote"]),
    "a YAML date as a tag": ({"team: ml": "team: 2024-01-01"}, ["tags.team", "date", "quote"]),
    "a metric name on two lines": ({"tags:": 'autoscaling: {max: 2, target: 5, metric: {name: "a\\nb", '
                                             'namespace: ns}}\ntags:'}, ["autoscaling.metric.name", "one line"]),
    "scale to zero on a real-time endpoint": ({"tags:": "autoscaling: {min: 0, max: 2}\ntags:"},
                                              ["autoscaling.min", "asynchronous", "endpoint.async"]),
    "the backlog metric on a real-time endpoint": ({"tags:": "autoscaling: {max: 2, metric: backlog}\ntags:"},
                                                   ["autoscaling.metric", "ApproximateBacklogSizePerInstance"]),
    "a gateway content type with CRLF": ({"tags:": 'gateway: {content_type: "text/csv\\r\\nX-Injected: 1"}\ntags:'},
                                         ["gateway.content_type", "text/csv"]),
    "an alarm name on two lines": ({"count: 1, weight: 1}]": 'count: 1, weight: 1}]\n  update: {alarms: ["a\\nb"]}'},
                                   ["endpoint.update.alarms[0]", "one line"]),
}


@pytest.mark.parametrize("case", list(EXPERIMENT_CASES))
def test_bad_experiment_values_exit_2_and_send_nothing(case, sme, moto, model_tar, tmp_path):
    replace, words = EXPERIMENT_CASES[case]
    model = replace.get("MODEL", model_tar)
    (tmp_path / "sme.yaml").write_text(experiment(model, **{k: v for k, v in replace.items() if k != "MODEL"}))
    refused(sme("deploy", "-c", "sme.yaml"), "sme.yaml", *words)
    nothing_sent(moto)


@pytest.mark.parametrize("name, members, words", [
    ("nested.tar.gz", [("model", None), ("model/xgboost-model", b"x")], ["nothing SageMaker can serve",
                                                                        "model/xgboost-model", "tar -czf"]),
    ("escape.tar.gz", [("../xgboost-model", b"x")], ["outside /opt/ml/model"]),
    ("empty.tar.gz", [], ["no members"]),
])
def test_model_archives_sagemaker_cannot_serve_are_refused(sme, moto, tmp_path, name, members, words):
    archive = tar_with(tmp_path / name, *members)
    (tmp_path / "sme.yaml").write_text(experiment(archive))
    refused(sme("deploy", "-c", "sme.yaml"), "model.model_data", name, *words)
    nothing_sent(moto)


def test_symlink_loops_are_named_as_such(sme, moto, model_tar, tmp_path):
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    refused(sme("deploy", "-c", "loop.yaml"), "loop.yaml", "symlink loop")
    (tmp_path / "model-loop.tar.gz").symlink_to(tmp_path / "model-loop.tar.gz")
    (tmp_path / "sme.yaml").write_text(experiment(tmp_path / "model-loop.tar.gz"))
    refused(sme("deploy", "-c", "sme.yaml"), "model.model_data", "symlink loop")
    nothing_sent(moto)


@pytest.mark.parametrize("command, flags, words", [
    ("deploy", ["--name", "churn\n"], ["name:", "letters, digits"]),
    ("deploy", ["--target", "nan"], ["autoscaling.target", "nan"]),
    ("deploy", ["--env", "=x"], ["--env", "KEY=VALUE"]),
    ("status", ["--name", "churn\n"], ["churn\\n", "experiment name"]),
    ("status", ["--name", "churn", "--region", "us-east-1\n"], ["us-east-1\\n", "not an AWS region"]),
])
def test_bad_flags_exit_2_and_send_nothing(sme, moto, model_tar, tmp_path, command, flags, words):
    (tmp_path / "sme.yaml").write_text(experiment(model_tar) + "autoscaling: {max: 4}\n")
    args = [command, "-c", "sme.yaml", *flags] if command == "deploy" else [command, *flags]
    refused(sme(*args), *words)
    nothing_sent(moto)


def test_an_aws_message_with_brackets_is_printed_as_text_not_markup(sme, vpc, tmp_path):
    """`[/]` in a preflight cell was read as a rich closing tag and crashed sme (an S3 key may hold it)."""
    url = "s3://sme-missing-bucket/a[/]b[bold]c/model.tar.gz"
    (tmp_path / "sme.yaml").write_text(experiment(Path("MODEL"), MODEL=url))
    result = sme("preflight", "-c", "sme.yaml")
    assert result.returncode == 6, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "a[/]b[bold]c/model.tar.gz" in result.stdout.replace("\n", "").replace("│", "").replace(" ", "")


# -- load-test files -------------------------------------------------------------------------------------
@pytest.fixture
def lt_env(tmp_path):
    env = dict(os.environ, SME_STATE_DIR=str(tmp_path / ".sme"), PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))
    env.pop("AWS_ENDPOINT_URL", None)
    (tmp_path / "tmp").mkdir()
    return env


def loadtest(tmp_path: Path, env: dict, text: str, timeout: float = 60) -> subprocess.CompletedProcess:
    (tmp_path / "lt.yaml").write_text(text)
    return subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", "lt.yaml", "--out", "run"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def url_test(srv: CountingServer, stages: str = "  - {duration: 1s, users: 1}", target: str = "",
             payload: str = "{body: '1,2', content_type: text/csv}") -> str:
    return f"target: {{url: '{srv.url}/invocations'{target}}}\npayload: {payload}\nstages:\n{stages}\n"


LOADTEST_CASES = {
    "rate NaN": ({"stages": "  - {duration: 5s, rate: .nan}"}, ["stages[0].rate", "nan"]),
    "rate infinity": ({"stages": "  - {duration: 5s, rate: .inf}"}, ["stages[0].rate", "inf"]),
    "duration NaN": ({"stages": "  - {duration: .nan, users: 1}"}, ["stages[0].duration", "nan"]),
    "duration of 400 digits": ({"stages": "  - {duration: '" + "9" * 400 + "s', users: 1}"},
                               ["stages[0].duration", "finite"]),
    "a 10^9-step ladder": ({"stages": "  - steps: {kind: rate, start: 1, step: 1, every: 1s, count: 1000000000}"},
                           ["stages[0].steps.count", "1,000,000,000 steps", "1000"]),
    "a ladder up to 10^300": ({"stages": "  - steps: {kind: rate, start: 1, step: 1.0e-300, every: 1s, max: 1.0e+300}"},
                              ["stages[0].steps.max", "more than the 1000"]),
    "ten million users": ({"stages": "  - {duration: 5s, users: 10000000}"}, ["stages[0].users", "10,000,000",
                                                                              "processes:"]),
    "a ladder of too many users": ({"stages": "  - steps: {kind: users, start: 1000, step: 1000, every: 10s, "
                                              "count: 10, spawn_rate: 1000}"}, ["stages[0].steps", "10,000 users"]),
    "requests in flight beyond one process": ({"stages": "  - {duration: 5s, rate: 10}\nopen_model: "
                                                         "{max_in_flight: 100000}"}, ["open_model.max_in_flight"]),
    "a header with CRLF": ({"target": ", headers: {X-Trace: \"a\\r\\nInjected: yes\"}"},
                           ["target.headers.X-Trace", "CR, LF"]),
    "a header value ending in LF": ({"target": ", headers: {X-Trace: \"a\\n\"}"}, ["target.headers.X-Trace"]),
    "a header name with a space": ({"target": ", headers: {\"X Trace\": a}"}, ["target.headers", "'X Trace'"]),
    "a content type with LF": ({"payload": "{body: '1', content_type: \"text/csv\\nX: y\"}"},
                               ["payload.content_type"]),
}


@pytest.mark.parametrize("case", list(LOADTEST_CASES))
def test_bad_loadtest_values_exit_2_and_send_nothing(case, srv, tmp_path, lt_env):
    parts, words = LOADTEST_CASES[case]
    text = url_test(srv, **parts)
    refused(loadtest(tmp_path, lt_env, text), "lt.yaml", *words)
    assert srv.stats()["requests"] == 0
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_url_ending_in_a_newline_is_refused(srv, tmp_path, lt_env):
    text = url_test(srv).replace(f"'{srv.url}/invocations'", f'"{srv.url}/invocations\\n"')
    refused(loadtest(tmp_path, lt_env, text), "target.url", "http://")


def test_payloads_larger_than_sagemaker_takes_are_refused_unread(aws_env, moto, tmp_path):
    """6 MB is InvokeEndpoint's limit: a 200 MB file (sparse: nothing is read) and a 7 MB body both stop
    before any call; a url target takes up to 32 MB per body."""
    with open(tmp_path / "big.bin", "wb") as fh:
        fh.truncate(200 << 20)
    (tmp_path / "seven.csv").write_bytes(b"1," * (7 << 19))
    env = dict(aws_env, TMPDIR=str(tmp_path))
    head = "target: {endpoint: churn}\nstages:\n  - {duration: 1s, users: 1}\n"
    refused(loadtest(tmp_path, env, head + "payload: {file: big.bin}\n"), "payload.file", "200.0 MB", "6.0 MB")
    refused(loadtest(tmp_path, env, head + "payload: {file: seven.csv, split: lines}\n"), "payload.file", "7.0 MB")
    refused(loadtest(tmp_path, env, head.replace("endpoint: churn", "url: 'http://127.0.0.1:9/'")
                     + "payload: {file: big.bin}\n"), "payload.file", "32.0 MB")
    nothing_sent(moto)


def test_rate_zero_sends_nothing(srv, tmp_path, lt_env):
    result = loadtest(tmp_path, lt_env, url_test(srv, "  - {duration: 2s, rate: 0}"))
    assert result.returncode == 0, result.stderr
    assert srv.stats()["requests"] == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["requests"] == 0


def test_a_config_inside_its_own_output_folder_runs(srv, tmp_path, lt_env):
    """`-c run/loadtest.yaml --out run` (run again from the copy a run left): the file is its own copy."""
    (tmp_path / "run").mkdir()
    text = url_test(srv, "  - {duration: 1s, rate: 0}")
    (tmp_path / "run" / "loadtest.yaml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", "run/loadtest.yaml", "--out", "run"],
                            env=lt_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "loadtest.yaml").read_text() == text
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["requests"] == 0


def _start(tmp_path: Path, env: dict, text: str) -> subprocess.Popen:
    (tmp_path / "lt.yaml").write_text(text)
    return subprocess.Popen([sys.executable, "-m", "sme", "loadtest", "-c", "lt.yaml", "--out", "run"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_second_ctrl_c_kills_the_load_and_exits_130(srv, tmp_path, lt_env):
    """The first Ctrl-C asks for a graceful stop (the users finish their request in flight); the second,
    sent while that stop waits on 5-second answers, kills the load process group at once."""
    proc = _start(tmp_path, lt_env, url_test(srv, "  - {duration: 60s, users: 2}"))
    _wait_for(lambda: srv.stats()["requests"] > 20, "requests")
    srv.configure(latency_ms=5000)  # a graceful stop from now on waits for answers that take 5 s
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    # sme has taken the first Ctrl-C once it wrote the stop file (two signals sent before it runs its handler
    # would arrive as one: the kernel does not queue a second pending SIGINT)
    _wait_for(lambda: list((tmp_path / "tmp").glob("sme-loadtest-*/stop")), "the stop file")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "killed" in err


def test_a_sigkilled_run_leaves_no_api_key_on_disk(srv, tmp_path, lt_env):
    """The plan file holds the front door's API key: gone once the load process has read it, and the temp
    dir is gone once the orphaned load process stops."""
    state = Path(lt_env["SME_STATE_DIR"]) / "churn.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"version": 1, "experiment": "churn", "region": "", "resources": [],
                                 "endpoint_configs": [], "secrets": {"api_key": "k-secret-123"},
                                 "outputs": {"gateway_url": f"{srv.url}/prod/invocations"}}))
    proc = _start(tmp_path, lt_env, "target: {gateway: churn}\npayload: {body: '1'}\n"
                  "stages:\n  - {duration: 60s, users: 2}\n")
    _wait_for(lambda: srv.stats()["requests"] > 20, "requests")
    temp = tmp_path / "tmp"
    work = list(temp.glob("sme-loadtest-*"))
    assert len(work) == 1 and oct(work[0].stat().st_mode & 0o777) == "0o700"
    assert not (work[0] / "plan.json").exists(), "the plan (and its API key) outlived the load process's start"
    proc.kill()
    proc.communicate(timeout=10)
    _wait_for(lambda: not list(temp.iterdir()), "the orphaned load process to remove its temp dir")


# -- watch -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, where, words", [
    ("--out", "afile/watch.jsonl", ["afile is a file, not a directory"]),
    ("--out", "/sys/sme-watch.jsonl", ["cannot be written"]),
    ("--to-csv", "afile/watch.csv", ["--to-csv", "afile is a file"]),
])
def test_an_unwritable_watch_output_is_refused_before_any_aws_call(sme, moto, tmp_path, flag, where, words):
    (tmp_path / "afile").write_text("x")
    args = ["watch", "--endpoint", "churn", "--duration", "2s", "--interval", "1s", flag, where]
    if flag == "--to-csv":
        args += ["--out", "watch.jsonl"]
    refused(sme(*args), *words)
    nothing_sent(moto)
    assert not (tmp_path / "watch.jsonl").exists()


def test_a_full_disk_stops_the_watch_with_what_was_written(sme, boto, vpc, aws_env, tmp_path):
    """A file-size limit (as a full disk) that the first sample fits and the second does not: the watch
    stops with a clear message, and the file holds the first sample whole, ready for --resume."""
    make_endpoint(boto, vpc)
    once = sme("watch", "--endpoint", "churn", "--once", "--json")
    assert once.returncode == 0, once.stderr
    limit = len(once.stdout.encode()) * 3 // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "sme", "watch", "--endpoint", "churn", "--interval", "1s",
                             "--duration", "4s", "--out", "watch.jsonl"], env=aws_env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, preexec_fn=small_disk)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "cannot write to watch.jsonl" in result.stderr and "--resume" in result.stderr
    text = (tmp_path / "watch.jsonl").read_text()
    assert text.endswith("\n") and [json.loads(line)["slot"] for line in text.splitlines()] == [0]
