"""A slow disk is not measured as the target's latency. The load process refreshes summary.json every few
seconds (so a killed run keeps what it measured) and syncs it; if that sync ran on the load process's event
loop, every request in flight would wait for it, and a 1.5 s sync would be recorded as 1.5 s of latency."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_loadtest import env, server, sme, srv, summary, url_config, write_config  # noqa: F401

pytestmark = pytest.mark.timeout(120)
SLOW_FSYNC = Path(__file__).resolve().parents[1] / "support" / "slow_fsync"


def test_a_slow_sync_of_the_running_summary_does_not_stall_the_requests(srv, tmp_path, env):  # noqa: F811
    srv.configure(latency_ms=20)
    env.update(SME_TEST_FSYNC_S="1.5", PYTHONPATH=os.pathsep.join(filter(None, [str(SLOW_FSYNC),
                                                                                 env.get("PYTHONPATH")])))
    cfg = write_config(tmp_path, url_config(srv, "  - {duration: 12s, users: 4}"))
    r = sme("loadtest", "-c", str(cfg), "--out", "run", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(tmp_path / "run")
    assert s["requests"] == srv.stats()["requests"] > 100 and s["failures"] == 0
    # two in-progress summaries were synced during the load (at 5 s and 10 s), each taking 1.5 s: on the loop,
    # every request in flight then would have lasted 1.5 s or more
    assert s["latency_ms"]["max"] < 1000, s["latency_ms"]
    assert not list((tmp_path / "run").glob(".summary.json.*")), "a temporary summary was left behind"
