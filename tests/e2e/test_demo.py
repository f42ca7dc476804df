"""`sme demo --minutes 1`, once, as a user runs it: real local AWS, real model, real load, real watch; the
run is `sme run` of the files shipped in sme/data/seed/ (the seed's experiment at demo scale), with its update under load."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    proc = subprocess.run([sys.executable, "-m", "sme", "demo", "--minutes", "1", "--out", str(out)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and not summary["partial"]
    assert summary["failures"] <= summary["requests"] * 0.01, summary
    samples = [json.loads(line) for line in (out / "watch.jsonl").read_text().splitlines()]
    taken = [s for s in samples if not s.get("missed")]
    assert len(taken) >= 5, f"expected a sample every 5 s during the load, got {len(taken)}"
    assert any(sum((m or {}).get("Invocations") or 0 for m in s["metrics"].values()) > 0 for s in taken), \
        "CloudWatch invocations never reached the watch"
    assert all(s["subnets"] for s in taken), "the watch should see the demo's subnets"
    instances = [sum(v["current_instances"] or 0 for v in s["variants"]) for s in taken if s["variants"]]
    assert max(instances) > instances[0], f"autoscaling should add an instance under load: {instances}"
    free = [sum(n["free_ips"] for n in s["subnets"]) for s in taken if s["variants"]]
    assert min(free) < free[0], f"scale-out should take addresses from the subnets: {free}"
    assert "done: results in" in proc.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["run"].endswith("run-local.yaml") and record["interrupted"] is False
    [update] = record["events"]
    assert update["what"] == "deploy sme-v2-local.yaml" and update["outcome"] == "ok", update
    assert update["ended_on_asked"] and update["final_config"] != update["from_config"], update
    page = (out / "report.html").read_text()
    assert "deploy sme-v2-local.yaml" in page and "ended on the asked config" in page
    said = (proc.stdout + proc.stderr).replace("\n", "")  # (rich wraps a long path at 80 columns off a terminal)
    for words in (f"{summary['requests']} requests", str(out / "report.html"), "demo: every resource sme made is gone"):
        assert words in said, f"the demo's output should say {words!r}"
    assert not (out / ".sme" / "demo.json").exists(), "teardown should have removed the deploy state"
    leftovers = subprocess.run(["pgrep", "-f", f"sme.local.runtime.*{out}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"runtime processes left running: {leftovers.stdout}"
