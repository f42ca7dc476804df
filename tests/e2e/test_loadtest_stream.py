"""`sme loadtest` of streaming answers, end to end: the real CLI, real Locust, and a loopback server that
streams token events and notes when it wrote each one (tests/support/httpserver.py). Counts are checked
exactly against the server; time to first token and inter-token latency against the server's own times."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hdrh.histogram import HdrHistogram

from tests.e2e.test_loadtest import _state, env, server, sme, srv, summary, write_config  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def stream_config(srv, stages: str, fmt_target: str = "stream: sse", extra: str = "") -> str:
    return (f"target: {{url: '{srv.url}/generate_stream', {fmt_target}}}\n"
            "payload: {json: {inputs: 'Once upon a time', parameters: {max_new_tokens: 8}, stream: true}}\n"
            f"stages:\n{stages}\n{extra}")


def server_truth(srv, since: float = 0.0, path: str | None = None) -> tuple[dict, dict, int]:
    """p50/p90/p99 of the server's own time to first token and gaps between tokens, and its token count (of the
    requests it finished at or after ``since``)."""
    ttft, itl = HdrHistogram(1, 3_600_000_000, 3), HdrHistogram(1, 3_600_000_000, 3)
    tokens = 0
    for arrived, where, sent in srv.tokens():
        if (sent and sent[-1] < since) or (path and where != path):
            continue
        tokens += len(sent)
        if sent:
            ttft.record_value(int((sent[0] - arrived) * 1e6))
        for a, b in zip(sent, sent[1:]):
            itl.record_value(max(1, int((b - a) * 1e6)))
    pick = lambda h: {p: h.get_value_at_percentile(q) / 1000.0 for p, q in (("p50", 50), ("p90", 90), ("p99", 99))}  # noqa: E731
    return pick(ttft), pick(itl), tokens


def close_to(measured: float, truth: float, what: str, waited_ms: float) -> None:
    """Within 5% + 3 ms of the server's own number (the client's clock starts before the server reads the
    request and stops after it writes), plus the longest that sme says its load process waited at once for
    a core (``limited_by.loop_delay_ms.cpu_wait_peak``): a token that arrived meanwhile was read that much
    later. Nothing more: what sme's own work holds the loop up counts against it. A client cannot see a token
    before it was sent."""
    slack = 0.05 * truth + 3.0
    assert measured >= truth - slack, f"{what}: measured {measured} ms, below the server's {truth} ms"
    assert measured <= truth + slack + waited_ms, \
        f"{what}: measured {measured} ms, server {truth} ms (the load process waited up to {waited_ms} ms)"


@pytest.mark.parametrize("fmt", ["tgi", "eventstream"])
def test_streamed_tokens_reconcile_with_the_server(srv, env, tmp_path, fmt):  # noqa: F811
    srv.configure(stream={"tokens": 5, "ttft_ms": 100, "itl_ms": [10, 30], "format": fmt}, seed=3)
    # a second to open the users' connections (a first request also waits for its connection, which the
    # server does not see), then the stage whose numbers are compared with the server's
    config = write_config(tmp_path, stream_config(srv, "  - {duration: 1, users: 8, spawn_rate: 100}\n"
                                                       "  - {duration: 5, users: 8}"))
    if fmt == "eventstream":  # InvokeEndpointWithResponseStream, signed, at a server speaking SageMaker's framing
        env.update(AWS_ENDPOINT_URL=srv.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1")
        env.pop("AWS_PROFILE", None)
        _state(env, "llm", endpoint="llm-ep", region="us-east-1")
        config.write_text(config.read_text().replace(f"url: '{srv.url}/generate_stream', stream: sse",
                                                     "endpoint: llm, stream: true"))
    out = tmp_path / "out"
    r = sme("loadtest", "-c", str(config), "--out", str(out), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(out)
    path = "/endpoints/llm-ep/invocations-response-stream" if fmt == "eventstream" else "/generate_stream"
    by_path = srv.stats()["by_path"]  # (an endpoint target also asks the control plane whether it is serverless)
    _, _, tokens = server_truth(srv, path=path)
    assert s["requests"] == by_path[path] > 150 and s["failures"] == 0
    assert s["stream"]["output_tokens"] == tokens == 5 * s["requests"]
    assert s["stream"]["requests_with_tokens"] == s["requests"]
    assert sum(st["stream"]["output_tokens"] for st in s["stages"]) == tokens
    ttft, itl, _ = server_truth(srv, since=s["started_at"] + 1.0, path=path)
    # on a machine whose cores are all taken at a moment (another test's servers, a CI neighbour) a token may
    # wait for the load process to get one: sme measures that wait, and only that much more is allowed
    waited = s["stages"][1]["limited_by"]["loop_delay_ms"]["cpu_wait_peak"]
    for p in ("p50", "p90", "p99"):
        close_to(s["stages"][1]["stream"]["ttft_ms"][p], ttft[p], f"ttft {p}", waited)
        close_to(s["stages"][1]["stream"]["itl_ms"][p], itl[p], f"itl {p}", waited)
    assert s["stream"]["ttft_ms"]["p50"] >= 100  # the server waited 100 ms before the first token
    assert s["stream"]["e2e_ms"]["p50"] >= s["stream"]["ttft_ms"]["p50"] + 4 * 10
    rows = (out / "timeseries.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[-5:] == ["ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "output_tokens"]
    assert sum(int(r.split(",")[-1]) for r in rows[1:]) == tokens
    assert "output tokens" in r.stdout and "time to first token" in r.stdout
    if fmt == "eventstream":
        last = srv.last()
        assert last["path"] == "/endpoints/llm-ep/invocations-response-stream"
        assert last["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


def test_a_ttft_slo_breach_exits_3_and_broken_streams_count_by_their_error(srv, env, tmp_path):  # noqa: F811
    srv.configure(stream={"tokens": 6, "ttft_ms": 150, "itl_ms": 5, "format": "tgi", "error_every": 4})
    config = write_config(tmp_path, stream_config(srv, "  - {duration: 3, users: 4, spawn_rate: 100}",
                                                  extra="slo: {ttft_p99_ms: 100, itl_p99_ms: 1000}"))
    out = tmp_path / "out"
    r = sme("loadtest", "-c", str(config), "--out", str(out), env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    s = summary(out)
    truth = srv.stats()
    broken = truth["requests"] // 4
    assert s["requests"] == truth["requests"] and s["failures"] == broken > 0
    assert s["errors"] == [{"kind": "stream", "code": "generation", "count": broken}]
    checks = {c["name"]: c for c in s["slo"]["checks"]}
    assert not checks["ttft_p99_ms"]["passed"] and checks["ttft_p99_ms"]["actual"] >= 150
    assert checks["itl_p99_ms"]["passed"]
    assert s["stream"]["requests_with_tokens"] == s["requests"] - broken


def test_stream_settings_that_cannot_work_are_refused_before_any_load(srv, env, tmp_path):  # noqa: F811
    config = write_config(tmp_path, "target: {gateway: demo, stream: true}\npayload: {body: x}\n"
                                    "stages: [{duration: 1, users: 1}]\n")
    r = sme("loadtest", "-c", str(config), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "target.stream" in r.stderr and "Traceback" not in r.stderr
    config = write_config(tmp_path, f"target: {{url: '{srv.url}/x'}}\npayload: {{body: x}}\n"
                                    "stages: [{duration: 1, users: 1}]\nslo: {ttft_p99_ms: 100}\n")
    r = sme("loadtest", "-c", str(config), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "slo.ttft_p99_ms" in r.stderr and "stream: true" in r.stderr
    assert srv.stats()["requests"] == 0


def test_two_processes_in_the_open_model_merge_every_token_and_time_from_the_due_time(srv, env, tmp_path):  # noqa: F811
    """Two load processes at 20 req/s: every request and token reconciles, and time to first token counts
    from each request's due time (the server waits 60 ms, so no answer can show less)."""
    srv.configure(stream={"tokens": 4, "ttft_ms": 60, "itl_ms": 5, "format": "openai"})
    config = write_config(tmp_path, stream_config(srv, "  - {duration: 4, rate: 20}", extra="processes: 2"))
    out = tmp_path / "out"
    r = sme("loadtest", "-c", str(config), "--out", str(out), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(out)
    _, _, tokens = server_truth(srv)
    assert s["requests"] == srv.stats()["requests"] == 80 and s["model"] == "open"
    assert s["stream"]["output_tokens"] == tokens == 4 * 80  # the servers' usage.completion_tokens
    assert s["stream"]["requests_with_tokens"] == 80
    assert 60 <= s["stream"]["ttft_ms"]["p50"] <= s["stream"]["e2e_ms"]["p50"]


def test_a_stream_quiet_for_the_target_timeout_fails_and_a_slow_one_does_not(srv, env, tmp_path):  # noqa: F811
    """The target's ``timeout`` ends a stream that goes quiet that long (before its first token, or between
    two), whatever the stream took in all; and a connection that streamed keeps it for its next request's
    headers (sme reads streams with one timer each, the socket's own set aside meanwhile)."""
    srv.configure(stream={"tokens": 4, "ttft_ms": 10, "itl_ms": 400, "format": "tgi"})  # 1.2 s, no gap of 1 s
    config = write_config(tmp_path, stream_config(srv, "  - {duration: 6, users: 2, spawn_rate: 100}")
                          .replace("stream: sse}", "stream: sse, timeout: 1}"))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sme", "loadtest", "-c", str(config), "--out", str(out)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while srv.stats()["requests"] < 4 and time.monotonic() < deadline:  # both users streamed twice
            time.sleep(0.05)
        # now every answer's headers come 1.5 s late: only a connection that kept its timeout gives up at 1 s
        srv.configure(stream={"tokens": 4, "ttft_ms": 10, "itl_ms": 400, "format": "tgi", "headers_ms": 1500})
        time.sleep(2.0)
        # and then a first token 1.5 s late: the stream's own timer gives up at 1 s
        srv.configure(stream={"tokens": 4, "ttft_ms": 1500, "itl_ms": 10, "format": "tgi"})
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout + stderr
    s = summary(out)
    assert s["requests"] == srv.stats()["requests"] and s["requests"] - s["failures"] >= 4
    errors = {(e["kind"], e["code"]): e["count"] for e in s["errors"]}
    assert set(errors) == {("exception", "TimeoutError"), ("stream", "TimeoutError")}, s["errors"]
    assert errors["exception", "TimeoutError"] >= 2, "headers 1.5 s late: no reply within 1 s (each user)"
    assert errors["stream", "TimeoutError"] >= 2, "a first token 1.5 s after the 200: the stream went quiet"
    assert sum(errors.values()) == s["failures"]
    assert s["stream"]["requests_with_tokens"] == s["requests"] - s["failures"]
    assert s["stream"]["e2e_ms"]["max"] >= 1200, "a stream of 1.2 s in all, no gap of 1 s: not timed out"

