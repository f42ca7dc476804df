"""When the load generator or the machine was the limit (sme.loadtest.limits): the CPU sampler on injected
counters, the per-stage verdict on hand-made samples, and their trip through the tally and summary.json."""

from __future__ import annotations

import json

import pytest

from sme.loadtest.config import Stage
from sme.loadtest.limits import CpuSampler, CpuTally, LoopProbe, notices, run_verdict, stage_verdict
from sme.loadtest.results import summarize
from sme.loadtest.stats import Recorder, Tally


class Counters:
    """A clock, this process's CPU seconds and the machine's (busy, total) CPU seconds, moved by the test."""

    def __init__(self) -> None:
        self.now, self.mine, self.busy, self.total = 100.2, 5.0, 50.0, 200.0

    def step(self, seconds: float, mine: float, busy: float, cores: int = 2) -> None:
        self.now += seconds
        self.mine += mine * seconds
        self.busy += busy * cores * seconds
        self.total += cores * seconds


def sampler(c: Counters) -> CpuSampler:
    return CpuSampler(clock=lambda: c.now, process=lambda: c.mine, machine=lambda: (c.busy, c.total))


def test_the_sampler_reports_cores_used_and_the_machine_busy_share_per_second():
    c = Counters()
    s = sampler(c)
    assert s.sample() is None, "the first call only starts the counters"
    c.step(1.0, mine=0.95, busy=0.6)
    second, mine, busy = s.sample()
    assert second == 100 and abs(mine - 0.95) < 1e-9 and abs(busy - 0.6) < 1e-9
    c.step(0.2, mine=1.0, busy=1.0)
    assert s.sample() is None, "called again within half a second: no sample, the interval goes on"
    c.step(1.8, mine=0.5, busy=0.1)
    second, mine, busy = s.sample()
    assert second == 101 and abs(mine - (0.2 + 0.9) / 2.0) < 1e-9 and abs(busy - (0.4 + 0.36) / 4.0) < 1e-9


def test_a_machine_without_counters_gets_no_machine_share():
    c = Counters()
    s = CpuSampler(clock=lambda: c.now, process=lambda: c.mine, machine=lambda: None)
    s.sample()
    c.step(1.0, mine=0.25, busy=0.0)
    assert s.sample() == (100, 0.25, None)


def test_the_probe_keeps_the_latest_timer_and_the_longest_wait_for_a_core_between_two_ticks():
    clock, waited = [10.0], [2.0]
    p = LoopProbe(clock=lambda: clock[0], waited=lambda: waited[0])
    for now, wait_total, due in ((10.021, 2.001, 10.02), (10.07, 2.031, 10.041), (10.093, 2.032, 10.09)):
        clock[0], waited[0] = now, wait_total
        p.tick(due)
    late, wait = p.take()
    assert abs(late - 0.029) < 1e-9 and abs(wait - 0.030) < 1e-9, "the largest of each, not their sum"
    assert p.take() == (0.0, 0.0), "taken: the next second starts from nothing"
    clock[0], waited[0] = 10.2, 2.040
    p.tick(10.19)
    assert p.take()[1] == pytest.approx(0.008), "a wait is counted from the last tick, even one before a take"
    unknown = LoopProbe(clock=lambda: clock[0], waited=None)
    unknown.tick(10.1)
    assert unknown.take() == (pytest.approx(0.1), None), "no schedstat: the lateness alone"


def test_the_probe_reads_this_thread_s_wait_for_a_core_from_the_kernel_while_cores_are_taken():
    """The default wait counter is this thread's Linux schedstat: with more spinning processes than cores, a
    thread that sleeps and wakes waits for one, and the probe sees it."""
    import multiprocessing
    import os
    import time

    probe = LoopProbe()
    assert probe._waited is not None, "this machine's kernel keeps per-thread schedstat"
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(2 * (os.cpu_count() or 1))]
    for h in hogs:
        h.start()
    waits = []
    try:
        deadline = time.monotonic() + 10.0
        while sum(waits) < 0.005 and time.monotonic() < deadline:
            due = time.perf_counter() + 0.002
            time.sleep(0.002)
            probe.tick(due)
            late, wait = probe.take()
            assert late >= 0.0
            waits.append(wait)
    finally:
        stop.set()
        for h in hogs:
            h.join(5)
    assert sum(waits) >= 0.005, f"waited {1000 * sum(waits):.1f} ms in all with every core taken"


def _spin(stop) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        sum(range(10_000))


def tally_of(samples: dict[str, list[tuple[float, float | None]]], stage_of=lambda sec: sec // 10) -> CpuTally:
    """Per process label, one (cores, machine busy) sample per second from second 0."""
    t = CpuTally()
    for label, values in samples.items():
        t.add({"process": label, "role": "worker", "host": label.split("@")[1], "cores": 2,
               "seconds": {str(i): list(v) for i, v in enumerate(values)}}, stage_of, since=0)
    return t


def test_a_stage_is_generator_bound_when_a_process_used_a_core_for_a_quarter_of_its_seconds():
    easy, busy = (0.3, 0.5), (0.97, 0.6)
    three_of_ten = [easy] * 7 + [busy] * 3
    two_of_ten = [easy] * 8 + [busy] * 2
    t = tally_of({"worker:1@a": three_of_ten + two_of_ten, "worker:2@a": [easy] * 20})
    first, second = stage_verdict(t, 0), stage_verdict(t, 1)
    assert first["load_generator"] is True and second["load_generator"] is False
    assert first["machine"] is False and second["machine"] is False, "60% busy is not saturated"
    assert first["busiest_process"] == {"process": "worker:1@a", "mean": round((7 * 0.3 + 3 * 0.97) / 10, 3),
                                        "peak": 0.97, "saturated_share": 0.3}
    run = run_verdict(t, [first, second])
    assert run["load_generator"] is True and run["machine"] is False
    assert [p["process"] for p in run["processes"]] == ["worker:1@a", "worker:2@a"], "each process's own CPU"
    assert run["processes"][0]["saturated_share"] == 0.25 and run["machines"][0]["cores"] == 2


def test_a_stage_is_machine_bound_when_a_machine_was_saturated_whatever_the_load_process_used():
    t = tally_of({"local:1@laptop": [(0.4, 0.95)] * 4 + [(0.4, 0.5)] * 6})
    v = stage_verdict(t, 0)
    assert v["machine"] is True and v["load_generator"] is False
    assert v["busiest_machine"]["host"] == "laptop" and v["busiest_machine"]["saturated_share"] == 0.4
    text = notices({"stages": [{"index": 0, "rps": 812.4, "limited_by": v}]})
    assert len(text) == 1 and text[0].startswith("stage 1: the machine was the limit: laptop's cores")
    assert "812 req/s" in text[0] and "not the target's" in text[0]


def test_a_stage_reports_its_loop_s_latest_moment_and_says_so_from_twenty_ms():
    t = CpuTally()
    for label, loop in (("local:1@a", [(0.0004, 0.0001), (0.024, 0.009), (0.021, 0.0)]),
                        ("worker:2@a", [(0.003, 0.0095), (0.004, None), (0.0005, 0.0)])):
        t.add({"process": label, "role": "local", "host": "a", "cores": 2,
               "seconds": {str(i): [0.3, 0.5, *v] for i, v in enumerate(loop)}}, lambda sec: 0, since=0)
    t.add({"process": "older:3@b", "role": "worker", "host": "b", "cores": 2,  # (an older sme's batch: no probe)
           "seconds": {"0": [0.3, 0.5]}}, lambda sec: 0, since=0)
    t = CpuTally.from_json(json.loads(json.dumps(t.to_json())))
    v = stage_verdict(t, 0)
    assert v["loop_delay_ms"] == {"process": "local:1@a", "peak": 24.0, "notable_seconds": 2,
                                  "cpu_wait_peak": 9.5}, "the latest loop; the longest wait of any process"
    [text] = notices({"stages": [{"index": 0, "limited_by": v}]})
    assert text.startswith("stage 1: load process local:1@a read answers up to 24 ms after they came (waiting up to "
                           "10 ms at once for a free core)")
    v["loop_delay_ms"]["peak"] = 19.9
    assert notices({"stages": [{"index": 0, "limited_by": v}]}) == [], "under 20 ms late: no note"
    elsewhere = CpuTally()  # a kernel without schedstat: the lateness alone
    elsewhere.add({"process": "local:4@mac", "role": "local", "host": "mac", "cores": 8,
                   "seconds": {"0": [0.3, 0.5, 0.025, None]}}, lambda sec: 0, since=0)
    assert stage_verdict(elsewhere, 0)["loop_delay_ms"] == {"process": "local:4@mac", "peak": 25.0,
                                                            "notable_seconds": 1, "cpu_wait_peak": None}
    [text] = notices({"stages": [{"index": 0, "limited_by": stage_verdict(elsewhere, 0)}]})
    assert "read answers up to 25 ms after they came: the stage's" in text, "no wait to name"
    older = CpuTally.from_json({"processes": {}, "machines": {}})
    assert older.late == {} and older.waits == {} and stage_verdict(older, 0)["loop_delay_ms"] is None


def test_no_samples_is_no_verdict_rather_than_a_false_all_clear():
    v = stage_verdict(CpuTally(), 0)
    assert v["load_generator"] is None and v["machine"] is None and v["loop_delay_ms"] is None
    assert run_verdict(CpuTally(), [v])["load_generator"] is None
    assert notices({"stages": [{"index": 0, "limited_by": v}]}) == []


def test_samples_travel_from_a_worker_to_the_summary_and_survive_the_final_file():
    rec = Recorder()
    rec.record(1000.5, 5.0, None)
    rec.record_cpu(1000, 0.99, 0.97)
    assert "cpu" not in rec.drain(), "no label yet (before the sampler started): nothing to attribute"
    rec.who = {"process": "worker:7@b", "role": "worker", "host": "b", "cores": 4}
    rec.record_cpu(999, 0.99, 0.97)  # before the run: left out
    for sec in (1000, 1001):
        rec.record(sec + 0.5, 5.0, None)
        rec.record_cpu(sec, 0.99, 0.97)
    tally = Tally()
    tally.first_second = 1000
    tally.add(json.loads(json.dumps(rec.drain())))  # as a worker report travels
    tally = Tally.from_json(json.loads(json.dumps(tally.to_json())))  # as final.json keeps it
    final = {"tally": tally, "started_at": 1000.0, "ended_at": 1002.0, "elapsed": 2.0}
    s = summarize(final, [Stage(duration=2.0, users=1)], {}, False, {"kind": "url", "name": "x"}, partial=False)
    assert s["stages"][0]["limited_by"]["load_generator"] is True and s["stages"][0]["limited_by"]["machine"] is True
    assert s["limited_by"]["processes"] == [{"process": "worker:7@b", "role": "worker", "host": "b", "mean": 0.99,
                                             "peak": 0.99, "saturated_share": 1.0}]
    assert s["limited_by"]["machines"][0]["cores"] == 4
