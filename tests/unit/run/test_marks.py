"""The report's verdicts for a run's events, from run.json and the load's per-second rows."""

from __future__ import annotations

import json

from sme.report.build import ReportOptions, run_report
from sme.report.rundir import load_run
from sme.run import marks

T0 = 1_800_000_000.0


def run_dir(tmp_path, events):
    rows = ["time,elapsed_s,stage,users,target_rps,requests,failures,rps,p50_ms,p99_ms"]
    for s in range(60):  # 2 errors a second from 20 s to 25 s, a p99 of 900 ms at 22 s
        failures = 2 if 20 <= s < 25 else 0
        rows.append(f"{int(T0) + s},{s},0,4,,100,{failures},100,5,{900 if s == 22 else 20}")
    (tmp_path / "timeseries.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "run.json").write_text(json.dumps({"experiment": "churn", "events": events}))
    return load_run(tmp_path)


ZONE = {"number": 2, "kind": "fail_zone", "what": "fail_zone us-east-1a", "at_s": 20, "fired_at": T0 + 20,
        "late_s": 0.1, "outcome": "ok", "zone": "us-east-1a",
        "lost": [{"variant": "AllTraffic", "subnet": "subnet-a"}], "instances_before": {"AllTraffic": 3},
        "instances_lowest": {"AllTraffic": 2}, "instances_after": {"AllTraffic": 3}, "replaced_s": 6.0,
        "replaced_at": T0 + 26, "ended_at": T0 + 26,
        "subnets_before": [{"id": "subnet-a", "az": "us-east-1a", "free_ips": 10},
                           {"id": "subnet-b", "az": "us-east-1b", "free_ips": 10}],
        "subnets_after": [{"id": "subnet-a", "az": "us-east-1a", "free_ips": 11},
                          {"id": "subnet-b", "az": "us-east-1b", "free_ips": 9}]}
UPDATE = {"number": 1, "kind": "deploy", "what": "deploy sme-v2.yaml", "at_s": 5, "fired_at": T0 + 5,
          "ended_at": T0 + 15, "outcome": "rolled_back", "exit_code": 4, "from_config": "c-old",
          "asked_config": "c-new", "final_config": "c-old", "ended_on_asked": False, "strategy": "canary",
          "alarms": ["sme-churn-AllTraffic-5xx"], "alarms_fired": ["sme-churn-AllTraffic-5xx"],
          "transitions": [{"time": T0 + 7, "status": "Updating", "config": "c-new"},
                          {"time": T0 + 14, "status": "InService", "config": "c-old"}]}


def test_a_zone_failure_gets_the_time_to_replace_and_the_errors_during_it(tmp_path):
    found = marks.read(run_dir(tmp_path, [ZONE]))
    [v] = found.verdicts
    assert v.verdict == "capacity replaced after 6s" and v.at_s == 20
    text = " | ".join(v.details)
    assert "10 error(s) of 600 requests" in text, text  # the seconds 20 to 25: [20, 26)
    assert "worst one-second p99 900 ms" in text
    assert "instances 3 before, 2 at the lowest, 3 after" in text
    assert "subnet-b (us-east-1b) 10 -> 9" in text and "subnet-a (us-east-1a) 10" not in text
    assert [m.at_s for m in found.markers] == [20, 26], "marked where it began and where capacity was back"


def test_a_rolled_back_update_says_so_with_its_alarms_and_config(tmp_path):
    [v] = marks.read(run_dir(tmp_path, [UPDATE])).verdicts
    assert v.outcome == "rolled_back" and v.verdict == "rolled back: still on c-old"
    text = " | ".join(v.details)
    assert "alarms fired: sme-churn-AllTraffic-5xx" in text
    assert "Updating on c-new at 7s; InService on c-old at 14s" in text
    assert "ended on c-old, not the asked c-new" in text
    assert "0 error(s) of 1,000 requests" in text, text  # the seconds 5 to 14


def test_each_traffic_shift_step_has_its_share_and_the_load_while_it_was_in_force(tmp_path):
    steps = [{"time": T0 + 18, "status": "Baking", "step": 1, "share": 1 / 3},
             {"time": T0 + 23, "status": "Baking", "step": 2, "share": 1.0}]
    update = {**UPDATE, "transitions": [{"time": T0 + 7, "status": "Updating", "config": "c-old"},
                                        {"time": T0 + 26, "status": "InService", "config": "c-old"}],
              "traffic_steps": steps}
    [v] = marks.read(run_dir(tmp_path, [update])).verdicts
    text = " | ".join(v.details)
    # step 1 is in force over the seconds 18..22 (errors at 20, 21, 22), step 2 over 23..25 (errors at 23, 24)
    assert "step 1 at 18s: 33% of the traffic on the new fleet; 6 error(s) of 500 requests, worst one-second " \
           "p99 900 ms" in text, text
    assert "step 2 at 23s: 100% of the traffic on the new fleet; 4 error(s) of 300 requests, worst one-second " \
           "p99 20 ms" in text, text
    assert "alarm sme-churn-AllTraffic-5xx fired during step 2; SageMaker rolled all traffic back to the old " \
           "fleet (InService on c-old at 26s)" in text, text


def test_an_event_that_failed_to_fire_is_shown_as_such(tmp_path):
    ev = {"number": 1, "kind": "scale", "what": "scale min 4", "fired_at": T0 + 3, "late_s": 2.5,
          "outcome": "error", "error": "AccessDenied"}
    [v] = marks.read(run_dir(tmp_path, [ev])).verdicts
    assert (v.verdict, v.details[0]) == ("could not be carried out", "AccessDenied")


def test_the_report_has_the_events_table_and_their_lines_on_the_charts(tmp_path):
    run_dir(tmp_path, [UPDATE, ZONE])
    run_report(ReportOptions(tmp_path, use_pricing_api=False), _Env())
    page = (tmp_path / "report.html").read_text()
    assert "Events of the run" in page and "rolled back: still on c-old" in page
    assert "capacity replaced after 6s" in page
    assert page.count('class="event"') >= 4, "each event's start and end is a line on the chart"


def test_a_directory_without_run_json_has_no_run_events(tmp_path):
    run = run_dir(tmp_path, [])
    (tmp_path / "run.json").unlink()
    assert marks.read(run) is None


class _Env:
    def __init__(self):
        import io

        from rich.console import Console

        self.err = Console(file=io.StringIO())
