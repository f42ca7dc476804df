"""The bytes a run sent and received (summary.json `bytes`: what serverless bills as data processed) and the
CPU samples behind `limited_by`, from two load processes' batches to the summary and through the final file:
every total worked out here by hand."""

from __future__ import annotations

import json

from sme.loadtest.config import Stage
from sme.loadtest.results import summarize
from sme.loadtest.stats import Recorder, Tally

URL = {"kind": "url", "name": "x"}


def summary_of(tally: Tally) -> dict:
    final = {"tally": tally, "started_at": 1000.0, "ended_at": 1002.0, "elapsed": 2.0}
    return summarize(final, [Stage(duration=2.0, users=1)], {}, False, URL, partial=False)


def test_a_load_process_hands_over_the_bytes_counted_since_its_last_report_and_nothing_more():
    rec = Recorder()
    assert "bytes" not in rec.drain(), "nothing sent yet"
    rec.bytes[0] += 23  # as locustfile counts them: a request body sent, a response body received
    rec.bytes[1] += 29
    assert rec.drain()["bytes"] == [23, 29]
    assert "bytes" not in rec.drain(), "counted once"
    rec.bytes[1] += 7
    assert rec.drain()["bytes"] == [0, 7]


def test_bytes_from_every_process_add_up_in_the_summary_and_in_the_final_file():
    a, b = Recorder(), Recorder()
    a.bytes[0], a.bytes[1] = 100, 3
    b.bytes[0], b.bytes[1] = 20, 400
    tally = Tally()
    assert summary_of(Tally())["bytes"] == {"sent": 0, "received": 0}, "a run that sent nothing"
    tally.add(json.loads(json.dumps(a.drain())))  # as a worker report travels
    tally.add(b.drain(wire=False))  # as the local runner hands it over
    b.bytes[0] += 5
    tally.add(b.drain())
    assert summary_of(tally)["bytes"] == {"sent": 125, "received": 403}
    back = Tally.from_json(json.loads(json.dumps(tally.to_json())))  # as final.json keeps it
    assert summary_of(back)["bytes"] == {"sent": 125, "received": 403}
    older = tally.to_json()
    del older["bytes"]  # a run recorded before sme counted bytes
    assert summary_of(Tally.from_json(older))["bytes"] == {"sent": 0, "received": 0}


def test_cpu_samples_land_in_the_masters_second_and_a_machine_without_counters_gives_no_machine_share():
    rec = Recorder()
    rec.who = {"process": "worker:7@b", "role": "worker", "host": "b", "cores": 4}
    rec.offset = 2.0  # this worker's clock is 2 s ahead of the master's
    rec.record_cpu(1002, 0.4321, 0.5678)
    rec.record_cpu(1003, 0.25, None)
    rec.record_cpu(1004, 0.25, None, 0.0123456789, None)  # the loop's lateness, where schedstat is unknown
    rec.record_cpu(1005, 0.25, 0.5, 0.0123456789, 0.0001)
    assert rec.drain()["cpu"]["seconds"] == {"1000": [0.4321, 0.5678], "1001": [0.25, None],
                                             "1002": [0.25, None, 0.012346, None], "1003": [0.25, 0.5, 0.012346, 0.0001]}


def test_cpu_samples_before_the_run_started_stay_out_of_its_means():
    rec = Recorder()
    rec.who = {"process": "local:1@a", "role": "local", "host": "a", "cores": 2}
    for sec, mine, machine in ((999, 0.1, 0.1), (1000, 0.5, 0.25), (1001, 0.7, 0.75)):
        rec.record_cpu(sec, mine, machine)  # 999: importing and spawning, before the start
    tally = Tally()
    tally.first_second = 1000
    tally.add(json.loads(json.dumps(rec.drain())))
    limited = summary_of(tally)["limited_by"]
    assert limited["processes"] == [{"process": "local:1@a", "role": "local", "host": "a", "mean": 0.6,
                                     "peak": 0.7, "saturated_share": 0.0}]
    assert limited["machines"] == [{"host": "a", "cores": 2, "mean": 0.5, "peak": 0.75, "saturated_share": 0.0}]
