"""summary.json's ``limited_by`` end to end (real CLI, real Locust, a real server on 127.0.0.1): present on
every run and stage, no load-generator limit on an easy run, and each distributed process's own CPU.

Whether the machine was saturated depends on everything else it runs (this suite shares two cores with
others), so that verdict is checked against the samples it was made from, not assumed false."""

from __future__ import annotations

import pytest

from sme.loadtest.limits import GENERATOR_BUSY, LATE_NOTABLE_S, MACHINE_BUSY, SATURATED_SHARE
from tests.e2e.test_loadtest import (env, run_master_and_workers, server, srv, sme, summary,  # noqa: F401
                                     url_config, write_config)

pytestmark = pytest.mark.timeout(120)


def assert_consistent(verdict: bool, busiest: dict | None) -> None:
    """The machine verdict matches the samples: its busiest machine's busy share is a share, and a machine
    saturated for less than SATURATED_SHARE of the stage is not called the limit."""
    assert busiest is not None, "every stage of a run has CPU samples"
    assert 0.0 <= busiest["mean"] <= busiest["peak"] <= 1.0, busiest
    assert verdict == (busiest["saturated_share"] >= SATURATED_SHARE), busiest


def test_an_easy_run_says_the_load_generator_was_not_the_limit(srv, tmp_path, env):  # noqa: F811
    srv.configure(latency_ms=[20, 40, 1], seed=1)
    cfg = write_config(tmp_path, url_config(srv, "  - {duration: 3s, users: 2}\n  - {duration: 3s, users: 4}"))
    r = sme("loadtest", "-c", str(cfg), "--out", "run", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    s = summary(tmp_path / "run")
    assert s["limited_by"]["load_generator"] is False, s["limited_by"]
    assert s["limited_by"]["thresholds"] == {"process_cores": GENERATOR_BUSY, "machine_busy": MACHINE_BUSY,
                                             "share_of_stage": SATURATED_SHARE,
                                             "loop_delay_ms": LATE_NOTABLE_S * 1000.0}
    [process] = s["limited_by"]["processes"]
    assert process["role"] == "local" and process["mean"] < GENERATOR_BUSY, process
    for stage in s["stages"]:
        v = stage["limited_by"]
        assert v["load_generator"] is False and isinstance(v["machine"], bool), v
        assert_consistent(v["machine"], v["busiest_machine"])
        late = v["loop_delay_ms"]  # the load process's own probe: how late its loop was, and why
        assert late["process"] == process["process"] and late["peak"] >= 0.0, late
        assert late["cpu_wait_peak"] is not None and late["cpu_wait_peak"] >= 0.0, "Linux says how long it waited"
        noted = f"stage {stage['index'] + 1}: load process {late['process']} read answers up to" in r.stdout
        assert noted == (late["peak"] >= LATE_NOTABLE_S * 1000.0), (late, r.stdout)
    if s["limited_by"]["machine"] is False:
        assert "was the limit" not in r.stdout


def test_distributed_mode_records_each_worker_s_own_cpu(srv, tmp_path, env):  # noqa: F811
    srv.configure(latency_ms=[20, 40, 1], seed=2)
    cfg = write_config(tmp_path, url_config(srv, "  - {duration: 4s, users: 6}"))
    run_master_and_workers(cfg, tmp_path, env, workers=2)
    processes = summary(tmp_path / "run")["limited_by"]["processes"]
    assert sorted(p["role"] for p in processes) == ["master", "worker", "worker"], processes
    labels = [p["process"] for p in processes if p["role"] == "worker"]
    assert len(set(labels)) == 2, "one entry per worker process"
    assert all(p["mean"] is not None and p["mean"] < GENERATOR_BUSY for p in processes), processes
