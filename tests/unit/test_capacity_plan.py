"""`sme plan-capacity` in process, on runs recorded by sme's own recording from latencies chosen here: every
number, verdict and line of its output is worked out by hand below (latencies under 2.048 ms are exact
in an HDR histogram of 3 digits, so a p99 of 1.5 ms reads 1.5).

The ladder most tests use: steps of 10, 20 and 30 req/s, 5 s each (steady seconds 1-3, 6-8, 11-13);
every request of step 1 takes 1.0 ms, of step 2 1.5 ms, of step 3 300 ms (300.031 ms in HDR). With an SLO
of p99 <= 250 ms on 2 instances, step 3 breaks and step 2 is the knee: 20 req/s / 2 = 10 req/s per
instance; target 10 x 0.5 x 60 = 300 per minute; for a peak of 100 req/s, ceil(100 / 5) = 20 instances
with that target and ceil(100 / 10) = 10 bare; at $0.5 an hour: $10.00 at the peak, $0.50 at the
minimum of 1, and $10 / (100 x 3600) x 1e6 = $27.7778 per million inferences.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sme.capacity import CapacityOptions, plan, run_plan_capacity
from sme.console import Env
from sme.errors import UserError
from sme.loadtest.config import Stage
from sme.report.pricing import Price
from sme.report.rundir import load_run
from tests.support.runs import T0, write_recorded_run


class HandPrices:
    """The price list this test gives plan-capacity (the pricer is a parameter of the command)."""

    def __init__(self, usd: float | None = 0.5, note: str = "by hand"):
        self.usd, self.note = usd, note
        self.asked: list[tuple[str, str, str]] = []

    def price(self, instance_type: str, region: str, usage: str = "Host") -> Price:
        self.asked.append((instance_type, region, usage))
        return Price(instance_type, region, self.usd, "the test's list", self.note)


def ladder(tmp_path: Path, latencies=(1.0, 1.5, 300.0), rates=(10, 20, 30), slo=None, failed=0,
           kind="step", seconds=5) -> Path:
    stages = [Stage(seconds, rate=r, kind=kind) for r in rates]
    per_second = [[ms] * r for ms, r in zip(latencies, rates) for _ in range(seconds)]
    run = tmp_path / "run"
    write_recorded_run(run, stages, per_second, slo=slo, failed=failed)
    return run


def command(run: Path, prices=None, **kw) -> tuple[int, str, str]:
    opts = dict(directory=run, peak_rps=100.0, p99_ms=250.0, instances=2, instance_type="ml.m5.large",
                region="eu-west-1", use_pricing_api=False)
    opts.update(kw)
    env = Env(stdout=io.StringIO(), stderr=io.StringIO())
    code = run_plan_capacity(CapacityOptions(**opts), env, prices or HandPrices())
    return code, env.stdout.getvalue(), env.stderr.getvalue()


def test_the_text_output_line_by_line(tmp_path: Path) -> None:
    code, out, err = command(ladder(tmp_path))
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "steps: summary.json (steady seconds of each step); instances: 2 (--instances); SLO: p99 <= 250 ms",
        "step          load      req/s    p99 ms   errors  inst  verdict",
        "   1      10 req/s       10.0       1.0    0.00%     2  held",
        "   2      20 req/s       20.0       1.5    0.00%     2  held",
        "   3      30 req/s       30.0     300.0    0.00%     2  BROKE: p99 300.0 ms > 250 ms",
        "highest step that held: step 2, 20.0 req/s on 2 instance(s) = 10.00 req/s per instance",
        "autoscaling target: InvocationsPerInstance = 10.00 x 0.5 x 60 = 300.0 per instance per minute",
        "instances for the peak of 100 req/s: 20 with that target (bare minimum that holds the SLO: 10)",
        "cost per hour at peak: 20 x $0.5 = $10.00; at minimum: 1 x $0.5 = $0.50",
        "cost per million inferences at peak: $27.7778",
        "prices: ml.m5.large in eu-west-1 from the test's list (by hand)",
    ]


def test_the_json_output_in_full(tmp_path: Path) -> None:
    code, out, _ = command(ladder(tmp_path), as_json=True, safety=0.4, min_instances=3)
    assert code == 0
    step = {"error_rate": 0.0, "instances": 2.0, "held": True, "why": ""}
    assert json.loads(out) == {
        "basis": "summary.json (steady seconds of each step)", "instances_from": "2 (--instances)",
        "peak_rps": 100.0, "safety": 0.4,
        "steps": [dict(step, step=1, level="10 req/s", rps=10.0, p99_ms=1.0),
                  dict(step, step=2, level="20 req/s", rps=20.0, p99_ms=1.5),
                  dict(step, step=3, level="30 req/s", rps=30.0, p99_ms=300.031, held=False,
                       why="p99 300.0 ms > 250 ms")],
        "knee_step": 2, "rps_per_instance": 10.0, "target_invocations_per_instance": pytest.approx(240.0),
        "instances_at_peak": 25, "instances_no_headroom": 10, "min_instances": 3, "notes": [],
        "price": {"instance_type": "ml.m5.large", "region": "eu-west-1", "usd_per_hour": 0.5,
                  "source": "the test's list", "note": "by hand"},
        "cost": {"usd_per_hour_at_peak": 12.5, "usd_per_hour_at_minimum": 1.5,
                 "usd_per_million_inferences_at_peak": pytest.approx(12.5 / 360000 * 1e6)},
    }  # 100 / (10 x 0.4) = 25 instances; 25 x $0.5; 3 x $0.5


def test_without_a_price_the_output_says_why(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    code, out, _ = command(run, prices=HandPrices(None, "not in the list"))
    assert code == 0 and out.splitlines()[-1] == "cost: no price for ml.m5.large in eu-west-1 (not in the list)"
    code, out, _ = command(run, as_json=True, prices=HandPrices(None, "not in the list"))
    assert "cost" not in json.loads(out) and json.loads(out)["price"]["usd_per_hour"] is None
    code, out, _ = command(run, instance_type=None)
    assert out.splitlines()[-1] == "cost: unknown instance type (pass --instance-type, e.g. ml.m5.large)"
    code, out, _ = command(run, instance_type=None, as_json=True)
    assert json.loads(out)["price"] is None and "cost" not in json.loads(out)


def test_no_step_that_held_exits_3_and_says_so(tmp_path: Path) -> None:
    code, out, _ = command(ladder(tmp_path, latencies=(300.0, 300.0, 300.0)))
    assert code == 3
    assert out.splitlines()[-1] == ("no step held the SLO, not even step 1 (10 req/s): there is no sustainable "
                                    "rate to plan from")
    code, out, _ = command(ladder(tmp_path, latencies=(300.0, 300.0, 300.0)), as_json=True)
    r = json.loads(out)
    assert code == 3 and r["knee_step"] is None and r["rps_per_instance"] is None and "cost" not in r
    assert (r["target_invocations_per_instance"], r["instances_at_peak"], r["instances_no_headroom"]) == (None,) * 3


def test_every_step_that_held_makes_a_conservative_plan_with_a_note(tmp_path: Path) -> None:
    code, out, err = command(ladder(tmp_path, latencies=(1.0, 1.5, 2.0)))
    assert code == 0 and "highest step that held: step 3, 30.0 req/s" in out
    assert err.splitlines() == ["note: every step held the SLO: the knee is above the highest step, so this plan "
                                "is conservative (run a ladder that goes higher)"]


@pytest.mark.parametrize("safety", [0.0, -0.5, 1.01])
def test_a_safety_outside_0_to_1_is_refused(tmp_path: Path, safety: float) -> None:
    with pytest.raises(UserError, match=f"--safety {safety:g} is out of range"):
        command(ladder(tmp_path), safety=safety)


def test_a_safety_of_1_plans_no_headroom(tmp_path: Path) -> None:
    code, out, _ = command(ladder(tmp_path), safety=1.0, as_json=True)
    r = json.loads(out)
    assert code == 0 and r["instances_at_peak"] == r["instances_no_headroom"] == 10
    assert r["target_invocations_per_instance"] == 600.0


def test_a_p99_at_the_limit_holds_and_just_above_breaks(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    assert plan(load_run(run), 100, 1.5, 0.5, 1, 1, None).knee.step.number == 2, "1.5 ms <= 1.5 ms holds"
    p = plan(load_run(run), 100, 1.499, 0.5, 1, 1, None)
    assert p.knee.step.number == 1 and p.steps[1].why == "p99 1.5 ms > 1.499 ms"


def test_an_error_rate_at_the_budget_holds_and_above_breaks(tmp_path: Path) -> None:
    """1 of every second's 10 requests fails in step 1 (10%), 1 of 20 in step 2 (5%)."""
    run = ladder(tmp_path, latencies=(1.0, 1.0), rates=(10, 20), failed=1)
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, 0.1)
    assert [v.held for v in p.steps] == [True, True]
    assert (p.steps[0].step.requests, p.steps[0].step.errors, p.steps[0].step.rps) == (30, 3, 9.0), \
        "27 of 30 steady requests succeeded in 3 s: 9 req/s, just the 90% of 10 a step must serve"
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, 0.09)
    assert [v.why for v in p.steps] == ["errors 10.00% > 9.00%", ""]


def test_the_error_budget_comes_from_the_runs_slo_else_1_percent(tmp_path: Path) -> None:
    run = ladder(tmp_path, latencies=(1.0, 1.0), rates=(100, 200), failed=1, slo={"error_rate": 0.01})
    # step 1: 1 of 100 fail (1%: within 1%); step 2: 1 of 200 (0.5%)
    assert [v.held for v in plan(load_run(run), 100, 250, 0.5, 1, 1, None).steps] == [True, True]
    run = ladder(tmp_path, latencies=(1.0, 1.0), rates=(100, 200), failed=2, slo={"error_rate": 0.015})
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert [v.why for v in p.steps] == ["errors 2.00% > 1.50%", ""], "the run's SLO: 1.5%"
    run = ladder(tmp_path, latencies=(1.0, 1.0), rates=(100, 200), failed=2, slo={"p99_ms": 300})
    assert [v.held for v in plan(load_run(run), 100, 250, 0.5, 1, 1, None).steps] == [False, True], "default 1%"


def test_a_step_that_served_less_than_90_percent_of_its_rate_did_not_keep_up(tmp_path: Path) -> None:
    stages = [Stage(5, rate=10, kind="step"), Stage(5, rate=20, kind="step")]
    run = tmp_path / "slow"
    write_recorded_run(run, stages, [[1.0] * 9] * 5 + [[1.0] * 17] * 5)  # 9 of 10 req/s; 17 of 20
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert [v.held for v in p.steps] == [True, False] and p.steps[1].why == "served 17.0 of 20 req/s asked"


def test_a_run_without_a_ladder_takes_each_stage_as_a_step(tmp_path: Path) -> None:
    run = ladder(tmp_path, kind="rate")
    p = plan(load_run(run), 100, 250, 0.5, 2, 1, None)
    assert p.notes == ["the run has no step ladder: each stage is taken as a step"]
    assert [v.step.level for v in p.steps] == ["10 req/s", "20 req/s", "30 req/s"] and p.knee.step.number == 2


def test_closed_model_steps_are_named_by_their_users_and_have_no_rate_to_keep_up_with(tmp_path: Path) -> None:
    stages = [Stage(5, users=4, kind="step"), Stage(5, users=8, kind="step")]
    run = tmp_path / "users"
    write_recorded_run(run, stages, [[1.0] * 3] * 5 + [[1.0] * 4] * 5)
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert [(v.step.level, v.step.target_rps, v.held) for v in p.steps] == [("4 users", None, True),
                                                                            ("8 users", None, True)]


def test_a_step_holding_again_after_a_break_does_not_move_the_knee(tmp_path: Path) -> None:
    run = ladder(tmp_path, latencies=(1.0, 300.0, 1.0, 1.0), rates=(10, 20, 30, 40))
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert p.knee.step.number == 1
    assert p.notes == ["step(s) 3, 4 held again after step 2 broke; the plan stops at the first break"]


def test_no_successful_request_anywhere_is_named_first(tmp_path: Path) -> None:
    run = ladder(tmp_path, latencies=(1.0, 1.0), rates=(2, 3), failed=3)
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert p.knee is None and p.notes[0] == "no step had a successful request"
    assert [v.why for v in p.steps] == ["no successful request"] * 2


def test_instances_are_the_watch_files_average_during_each_step(tmp_path: Path) -> None:
    """Samples every 2 s from T0 - 4: 1 instance until T0 + 6, then 3. Step 1 (0-5 s) saw samples at 0, 2,
    4 (1 each); step 2 (5-10 s) at 6, 8, 10 (3 each); step 3 (10-15 s) at 10, 12, 14: 3."""
    run = ladder(tmp_path, latencies=(1.0, 1.0, 1.0), rates=(10, 30, 60))
    with open(run / "watch.jsonl", "w") as fh:
        for k in range(-2, 9):
            t = T0 + 2 * k
            fh.write(json.dumps({"slot": k + 2, "due": t, "time": t, "missed": False, "interval": 2,
                                 "variants": [{"name": "A", "current_instances": 1 if 2 * k < 6 else 3}]}) + "\n")
    p = plan(load_run(run), 100, 250, 0.5, None, 1, None)
    assert p.instances_from == "from the watch file"
    assert [v.step.instances for v in p.steps] == [1.0, 3.0, 3.0]
    assert p.knee.step.number == 3 and p.per_instance == 20.0


def test_with_no_watch_file_one_instance_is_assumed_and_said(tmp_path: Path) -> None:
    p = plan(load_run(ladder(tmp_path)), 100, 250, 0.5, None, 1, None)
    assert p.instances_from == "none known, 1 assumed (no watch file; pass --instances N)"
    assert [v.step.instances for v in p.steps] == [1.0, 1.0, 1.0] and p.per_instance == 20.0


def older(run: Path, summary: bool = True) -> Path:
    """The run as an older sme left it: no steady numbers in summary.json (or no summary.json at all)."""
    if not summary:
        (run / "summary.json").unlink()
        return run
    data = json.loads((run / "summary.json").read_text())
    for stage in data["stages"]:
        del stage["steady"]
    (run / "summary.json").write_text(json.dumps(data))
    return run


def numbers(p) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(s.number, s.start_s, s.end_s, s.level, s.target_rps, s.requests, s.errors, s.rps, s.p99_ms, s.instances)
            for s in (v.step for v in p.steps)]


def test_an_older_runs_steps_come_from_its_rows_but_the_first_and_last_of_each(tmp_path: Path) -> None:
    run = older(ladder(tmp_path, latencies=(1.0, 1.5, 1.9), failed=1))
    p = plan(load_run(run), 100, 250, 0.5, 2, 1, None)
    assert p.basis == "timeseries.csv (steady seconds of each step)"
    # steady rows 1-3, 6-8, 11-13: 3 x 10, 3 x 20, 3 x 30 requests, one failure a second
    assert numbers(p) == [(1, 0.0, 5.0, "10 req/s", 10.0, 30, 3, 9.0, 1.0, 2.0),
                          (2, 5.0, 10.0, "20 req/s", 20.0, 60, 3, 19.0, 1.5, 2.0),
                          (3, 10.0, 15.0, "30 req/s", 30.0, 90, 3, 29.0, 1.9, 2.0)]
    assert p.notes == ["summary.json has no per-step histograms of steady seconds (a run recorded by an older "
                       "sme, or the file is unreadable): each step's p99 is approximated as the request-weighted "
                       "mean of its seconds' p99s; run the ladder again for exact p99s"]


def test_an_older_runs_short_steps_keep_every_row(tmp_path: Path) -> None:
    p = plan(load_run(older(ladder(tmp_path, seconds=3))), 100, 250, 0.5, 1, 1, None)
    assert [(s.requests, s.rps) for s in (v.step for v in p.steps)] == [(30, 10.0), (60, 20.0), (90, 30.0)]


def test_rows_alone_are_steps_by_their_stage_column(tmp_path: Path) -> None:
    run = older(ladder(tmp_path, latencies=(1.0, 1.5, 300.0)), summary=False)
    p = plan(load_run(run), 100, 250, 0.5, 2, 1, None)
    assert numbers(p) == [(1, 0.0, 5.0, "10 req/s", 10.0, 30, 0, 10.0, 1.0, 2.0),
                          (2, 5.0, 10.0, "20 req/s", 20.0, 60, 0, 20.0, 1.5, 2.0),
                          (3, 10.0, 15.0, "30 req/s", 30.0, 90, 0, 30.0, 300.031, 2.0)]
    assert p.knee.step.number == 2


def test_a_second_without_requests_has_no_p99_to_average(tmp_path: Path) -> None:
    stages = [Stage(5, rate=10, kind="step")]
    run = tmp_path / "gap"
    write_recorded_run(run, stages, [[1.0] * 10, [1.0] * 10, [], [1.5] * 10, [1.0] * 10])
    p = plan(load_run(older(run)), 100, 250, 0.5, 1, 1, None)
    assert numbers(p) == [(1, 0.0, 5.0, "10 req/s", 10.0, 20, 0, 20 / 3, 1.25, 1.0)], "rows 1-3, the empty one too"


# -- hand-written run files: the fields plan-capacity reads, and what it does when they are odd ------------
def hand_summary(run: Path, stages: list[dict], **top) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps({"version": 1, "started_at": T0, "requests": 0, "stages": stages,
                                                  **top}))
    return run


def hand_rows(run: Path, rows: list[tuple]) -> Path:
    """(elapsed second, stage, users, target_rps, requests, failures, p99_ms) rows of timeseries.csv."""
    run.mkdir(parents=True, exist_ok=True)
    lines = ["time,elapsed_s,stage,users,target_rps,requests,failures,rps,p50_ms,p99_ms"]
    for k, stage, users, rate, n, f, p99 in rows:
        lines.append(",".join(str(x) for x in (T0 + k, k, stage, users, rate, n, f, n, "" if p99 is None else 1.0,
                                                "" if p99 is None else p99)))
    (run / "timeseries.csv").write_text("\n".join(lines) + "\n")
    return run


def test_steady_numbers_are_read_field_by_field(tmp_path: Path) -> None:
    warm = {"index": 0, "kind": "rate", "start_s": 0, "end_s": 10, "rate": 5, "requests": 50}
    step = {"index": 1, "kind": "step", "start_s": 10, "end_s": 20, "rate": 10, "requests": 100, "failures": 9,
            "dropped": 9, "latency_ms": {"p99": 99.0},
            "steady": {"seconds": 8, "requests": 80, "failures": 2, "dropped": 3, "latency_ms": {"p99": 7.5}}}
    one = {"index": 2, "kind": "step", "start_s": 20, "end_s": 21, "rate": 1, "requests": 1,
           "steady": {"seconds": 1, "requests": 1, "failures": 0, "latency_ms": {"p99": 2.0}}}
    none = {"index": 3, "kind": "step", "start_s": 21, "end_s": 21.4, "rate": 4, "requests": 0,
            "steady": {"seconds": 0, "requests": 0, "latency_ms": {"p99": None}}}
    p = plan(load_run(hand_summary(tmp_path / "r", [warm, step, one, none])), 100, 250, 0.5, 1, 1, None)
    assert numbers(p) == [(2, 10.0, 20.0, "10 req/s", 10.0, 80, 5, 78 / 8, 7.5, 1.0),
                          (3, 20.0, 21.0, "1 req/s", 1.0, 1, 0, 1.0, 2.0, 1.0),
                          (4, 21.0, 21.4, "4 req/s", 4.0, 0, 0, 0.0, None, 1.0)]
    assert [v.why for v in p.steps] == ["errors 6.25% > 1.00%", "", "no successful request"]
    assert p.steps[2].held is False, "one request that succeeded is a successful step"
    assert p.notes == ["step(s) 3 held again after step 2 broke; the plan stops at the first break"]


def test_whole_stage_numbers_of_an_older_summary_without_a_timeseries(tmp_path: Path) -> None:
    broken = {"index": 0, "kind": "step", "start_s": 0, "end_s": 10}  # no counts: not a step to judge
    step = {"index": 1, "kind": "step", "start_s": 10, "end_s": 20, "rate": 10, "requests": 100, "failures": 2,
            "dropped": 3, "latency_ms": {"p99": None}}
    bare = {"index": 2, "kind": "step", "start_s": 20, "end_s": 20, "requests": 0}
    p = plan(load_run(hand_summary(tmp_path / "r", [broken, step, bare])), 100, 250, 0.5, 1, 1, 0.1)
    assert p.basis == "summary.json per-step stats"
    assert numbers(p) == [(2, 10.0, 20.0, "10 req/s", 10.0, 100, 5, 9.8, None, 1.0),
                          (3, 20.0, 20.0, "", None, 0, 0, 0.0, None, 1.0)]
    assert [v.why for v in p.steps] == ["no latency recorded", "no successful request"]
    assert [v.held for v in p.steps] == [False, False]
    code, out, _ = command(tmp_path / "r")
    assert code == 3 and out.splitlines()[2] == "   2      10 req/s        9.8         -    5.00%     2  BROKE: no latency recorded"


def test_a_summary_with_no_step_to_plan_from_is_a_clear_error(tmp_path: Path) -> None:
    run = hand_summary(tmp_path / "r", [{"index": 0, "kind": "step", "start_s": 0, "end_s": 10}])
    with pytest.raises(UserError) as err:
        plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert err.value.message == f"{run}: the run has no steps to plan from"
    assert err.value.hint == "run a ladder: `stages: [{steps: {kind: rate, start: 50, step: 50, every: 2m}}]`"


def test_a_directory_without_a_load_test_is_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "w"
    run.mkdir()
    (run / "watch.jsonl").write_text(json.dumps({"slot": 0, "due": T0, "time": T0, "missed": False,
                                                 "variants": [{"name": "A", "current_instances": 1}]}) + "\n")
    with pytest.raises(UserError) as err:
        plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert err.value.message == f"{run} has no load-test results (summary.json/timeseries.csv)"
    assert err.value.hint == f"run a step ladder with `sme loadtest --out {run}` first"


def test_an_older_run_with_a_warm_up_plans_only_its_ladder_from_the_rows(tmp_path: Path) -> None:
    """Stage 0 warms up (not a step); steps 1 and 2 last 4 s; the last row is a second after the end."""
    run = tmp_path / "r"
    hand_summary(run, [{"index": 0, "kind": "rate", "start_s": 0, "end_s": 2, "rate": 5},
                       {"index": 1, "kind": "step", "start_s": 2, "end_s": 6, "rate": 10},
                       {"index": 2, "kind": "step", "start_s": 6, "end_s": 10, "rate": 20}])
    hand_rows(run, [(0, 0, "", 5, 5, 0, 1.0), (1, 0, "", 5, 5, 0, 1.0),
                    (2, 1, "", 10, 10, 0, 9.0), (3, 1, "", 10, 10, 1, 2.0), (4, 1, "", 10, 8, 0, 4.0),
                    (5, 1, "", 10, 10, 0, 9.0),
                    (6, 2, "", 20, 20, 0, 9.0), (7, 2, "", 20, 20, 0, 3.0), (8, 2, "", 20, 20, 0, 3.0),
                    (9, 2, "", 20, 20, 0, 3.0), (10, 2, "", 20, 2, 0, 9.0)])
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    # step 1: rows 3-4 (18 requests, 1 failure; p99 (2 x 10 + 4 x 8) / 18); step 2: rows 7-9
    assert numbers(p) == [(2, 2.0, 6.0, "10 req/s", 10.0, 18, 1, 8.5, (2.0 * 10 + 4.0 * 8) / 18, 1.0),
                          (3, 6.0, 10.0, "20 req/s", 20.0, 60, 0, 20.0, 3.0, 1.0)]
    assert [v.why for v in p.steps] == ["errors 5.56% > 1.00%", ""]


def test_rows_alone_name_each_step_by_its_last_rows_rate_or_users(tmp_path: Path) -> None:
    """No summary: a ramp's rows climb to its rate; a stage with no row is not a step; rows with no
    requests have no p99; a closed-model stage is named by its users."""
    run = hand_rows(tmp_path / "r", [(0, 0, "", 2, 2, 0, 1.0), (1, 0, "", 4, 4, 0, 1.0), (2, 0, "", 6, 6, 0, 1.0),
                                     (3, 2, "", 8, 0, 0, None), (4, 2, "", 8, 0, 0, None), (5, 2, "", 8, 0, 0, None),
                                     (6, 3, 7, "", 9, 0, 2.0), (7, 3, 9, "", 9, 0, 2.0), (8, 3, 9, "", 9, 0, 2.0),
                                     (9, 3, 9, "", 9, 0, 2.0), (10, 3, 8, "", 9, 0, 2.0)])
    p = plan(load_run(run), 100, 250, 0.5, 1, 1, None)
    assert numbers(p) == [(1, 0.0, 3.0, "6 req/s", 6.0, 12, 0, 4.0, 1.0, 1.0),
                          (3, 3.0, 6.0, "8 req/s", 8.0, 0, 0, 0.0, None, 1.0),
                          (4, 6.0, 11.0, "8 users", None, 27, 0, 9.0, 2.0, 1.0)]
    assert [v.held for v in p.steps] == [False, False, True], "4 of 6 req/s asked is under 90%"


def watch(run: Path, samples: list[tuple[float, list[int | None]]]) -> Path:
    """(seconds after T0, current instances of each variant) per sample."""
    path = run / "watch.jsonl"
    with open(path, "w") as fh:
        for slot, (t, counts) in enumerate(samples):
            fh.write(json.dumps({"slot": slot, "due": T0 + t, "time": T0 + t, "missed": False, "interval": 5,
                                 "variants": [{"name": f"v{i}", "current_instances": c}
                                              for i, c in enumerate(counts)]}) + "\n")
    return path


def instances(run: Path) -> list[float]:
    return [v.step.instances for v in plan(load_run(run), 100, 250, 0.5, None, 1, None).steps]


def test_a_sample_on_a_steps_boundary_counts_in_both_steps(tmp_path: Path) -> None:
    run = ladder(tmp_path)  # steps 0-5, 5-10, 10-15
    watch(run, [(0, [1]), (5, [2]), (10, [4]), (15, [4])])
    assert instances(run) == [1.5, 3.0, 4.0]


def test_a_step_with_no_sample_inside_takes_the_last_one_before_it(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    watch(run, [(-9, [3]), (-6, [1]), (-3, [2, None]), (12, [2, 3])])
    assert instances(run) == [2.0, 2.0, 5.0], "variants add up; a variant with no count adds nothing"


def test_a_step_before_the_first_sample_takes_the_first_count_and_no_count_at_all_is_one(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    watch(run, [(12, [0]), (13, [5])])
    assert instances(run) == [5.0, 5.0, 5.0]
    watch(run, [(3, [0]), (12, [None])])
    assert instances(run) == [1.0, 1.0, 1.0]


def test_the_command_reads_a_watch_file_given_apart(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    apart = watch(tmp_path, [(0, [4]), (15, [4])])
    code, out, _ = command(run, instances=None, watch_file=apart, as_json=True)
    r = json.loads(out)
    assert r["instances_from"] == "from the watch file" and r["rps_per_instance"] == 5.0


def test_the_command_passes_the_error_budget_and_finds_the_region(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "closed"  # 3 then 6 users: 1 of 3, then 1 of 6 requests a second fail
    write_recorded_run(run, [Stage(5, users=3, kind="step"), Stage(5, users=6, kind="step")],
                       [[1.0] * 3] * 5 + [[1.0] * 6] * 5, failed=1)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    code, out, _ = command(run, region=None, as_json=True, max_error_rate=0.5)
    r = json.loads(out)
    assert code == 0 and [s["held"] for s in r["steps"]] == [True, True]
    assert [(s["rps"], s["error_rate"]) for s in r["steps"]] == [(2.0, 0.333333), (5.0, 0.166667)]
    assert r["price"]["region"] == "ap-south-1"
    assert out.startswith('{\n  "basis": '), "indented by 2 for people"


def test_fractional_rates_are_rounded_to_3_places_in_json(tmp_path: Path) -> None:
    stages = [Stage(5, rate=10, kind="step")]
    run = tmp_path / "r"
    write_recorded_run(run, stages, [[1.0] * 10, [1.0] * 10, [], [1.0] * 10, [1.0] * 10])
    code, out, _ = command(run, as_json=True)
    assert json.loads(out)["steps"][0]["rps"] == 6.667


def test_a_tiny_peak_still_needs_one_instance(tmp_path: Path) -> None:
    p = plan(load_run(ladder(tmp_path)), 0.5, 250, 0.5, 2, 1, None)
    assert (p.instances_at_peak, p.instances_no_headroom) == (1, 1)


def test_equal_rates_per_instance_keep_the_first_step_as_the_knee(tmp_path: Path) -> None:
    p = plan(load_run(ladder(tmp_path, latencies=(1.0, 1.0), rates=(10, 10))), 100, 250, 0.5, 1, 1, None)
    assert p.knee.step.number == 1


def test_a_note_of_no_success_comes_before_the_others(tmp_path: Path) -> None:
    p = plan(load_run(ladder(tmp_path, latencies=(1.0, 1.0), rates=(2, 3), failed=3, kind="rate")),
             100, 250, 0.5, 1, 1, None)
    assert p.notes == ["no step had a successful request", "the run has no step ladder: each stage is taken as a step"]


def test_text_is_printed_as_given_not_as_markup_and_a_price_without_a_note_says_none(tmp_path: Path) -> None:
    run = ladder(tmp_path)
    code, out, _ = command(run, prices=HandPrices(0.5, "[bold]list[/bold]"))
    assert out.splitlines()[-1] == "prices: ml.m5.large in eu-west-1 from the test's list ([bold]list[/bold])"
    code, out, _ = command(run, prices=HandPrices(0.5, ""))
    assert out.splitlines()[-1] == "prices: ml.m5.large in eu-west-1 from the test's list"


def test_a_safety_out_of_range_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        command(ladder(tmp_path), safety=2.0)
    assert err.value.hint == "give a fraction in (0, 1], e.g. 0.5"


def test_one_successful_request_is_not_no_success(tmp_path: Path) -> None:
    one = {"index": 0, "kind": "step", "start_s": 0, "end_s": 3, "rate": 1, "requests": 1,
           "steady": {"seconds": 3, "requests": 1, "failures": 0, "latency_ms": {"p99": 2.0}}}
    p = plan(load_run(hand_summary(tmp_path / "r", [one])), 100, 250, 0.5, 1, 1, None)
    assert "no step had a successful request" not in p.notes


def test_an_older_step_with_no_row_of_its_own_is_skipped_and_the_next_planned(tmp_path: Path) -> None:
    """Step 2 lasts 0.4 s: no second's middle falls in it, so it has no row. Step 3 starts mid-second
    (2.9 s): its instances are the watch samples from 2.9 s on, not from its first row's second (2)."""
    run = tmp_path / "r"
    hand_summary(run, [{"index": 0, "kind": "step", "start_s": 0, "end_s": 2.5, "rate": 10},
                       {"index": 1, "kind": "step", "start_s": 2.5, "end_s": 2.9, "rate": 15},
                       {"index": 2, "kind": "step", "start_s": 2.9, "end_s": 7, "rate": 20}])
    hand_rows(run, [(0, 0, "", 10, 10, 0, 1.0), (1, 0, "", 10, 10, 0, 1.0)]
              + [(k, 2, "", 20, 20, 0, 1.0) for k in range(2, 7)])
    watch(run, [(2.2, [5]), (4, [1]), (6, [1])])
    p = plan(load_run(run), 100, 250, 0.5, None, 1, None)
    assert numbers(p) == [(1, 0.0, 2.5, "10 req/s", 10.0, 20, 0, 10.0, 1.0, 5.0),
                          (3, 2.9, 7.0, "20 req/s", 20.0, 60, 0, 20.0, 1.0, 1.0)]


def test_without_a_pricer_the_pricing_api_is_asked_and_its_silence_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: the API does not answer
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    opts = CapacityOptions(directory=ladder(tmp_path), peak_rps=100.0, p99_ms=250.0, instances=2,
                           instance_type="ml.m5.large", region="us-east-1", use_pricing_api=True, as_json=True)
    env = Env(stdout=io.StringIO(), stderr=io.StringIO())
    assert run_plan_capacity(opts, env) == 0
    price = json.loads(env.stdout.getvalue())["price"]
    assert price["usd_per_hour"] > 0 and "sme's price table" in price["source"]
    assert "did not answer" in price["note"] and "--prices table" not in price["note"]


def test_an_asynchronous_endpoints_instances_are_priced_at_their_own_usage_type(tmp_path: Path) -> None:
    """The Price List bills an asynchronous endpoint's instances as <REGION>-AsyncInf:<type>, a real-time
    one's as <REGION>-Host:<type>: plan-capacity asks for the one the run's endpoint is."""
    run = ladder(tmp_path)
    prices = HandPrices()
    assert command(run, prices)[0] == 0
    summary = json.loads((run / "summary.json").read_text())
    summary["async"] = {"submitted": 10, "succeeded": 10, "failed": 0, "pending": 0}
    (run / "summary.json").write_text(json.dumps(summary))
    code, _, err = command(run, prices)
    assert code == 0 and "scaled in to zero instances costs nothing while idle" in err
    assert prices.asked == [("ml.m5.large", "eu-west-1", "Host"), ("ml.m5.large", "eu-west-1", "AsyncInf")]
