"""`sme run`'s live screen: the watch's samples, read from the watch file as the watch appends them, drawn as
`sme watch` draws them, with the load line and the next event; plain lines when stderr is not a terminal."""

from __future__ import annotations

import io
import json

from rich.console import Console

from sme.console import Env
from sme.run.screen import RunScreen, WatchTail

PROGRESS = {"stage": 1, "users": 16, "rps": 212.0, "p50": 4.0, "p99": 31.0, "requests": 4200, "failures": 3,
            "elapsed": 40.0, "remaining": 80.0}


def sample(slot: int, invocations: float, free: int) -> dict:
    return {"slot": slot, "due": 1000.0 + 5 * slot, "interval": 5.0, "endpoint": "demo", "status": "InService",
            "missed": False, "variants": [{"name": "AllTraffic", "current_instances": 2, "desired_instances": 3}],
            "metrics": {"AllTraffic": {"Invocations": invocations}},
            "subnets": [{"id": "subnet-a", "az": "us-east-1a", "free_ips": free, "sagemaker_enis": 2}],
            "headroom": {"per_az": {"us-east-1a": free}, "total": free, "blue_green_spare": 1}, "errors": []}


def append(path, *records, tail: str = "") -> None:
    with path.open("a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records) + tail)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_watch_file_is_read_once_line_by_line_and_a_torn_line_waits_for_its_end(tmp_path):
    path = tmp_path / "watch.jsonl"
    tail = WatchTail(path)
    assert tail.new_records() == [], "no file yet: nothing, and no error"
    append(path, sample(0, 10, 9), tail='{"slot": 1, "du')
    assert [r["slot"] for r in tail.new_records()] == [0]
    assert tail.new_records() == [], "a sample is read once; a torn line is not read"
    with path.open("a") as fh:
        fh.write(json.dumps(sample(1, 20, 8))[len('{"slot": 1, "du'):] + "\n")
    assert [r["slot"] for r in tail.new_records()] == [1], "the line is read once it is whole"


def test_on_a_terminal_the_screen_shows_the_watch_table_the_load_line_and_the_next_event(tmp_path):
    path = tmp_path / "watch.jsonl"
    err = Tty()
    env = Env(stdout=io.StringIO(), stderr=err)
    env._err = Console(file=err, force_terminal=True, width=200)
    screen = RunScreen(env, path, lambda: "next: deploy sme-v2-local.yaml in 12s", clock=lambda: 1007.0)
    append(path, sample(0, 10.0, 9), sample(1, 25.0, 4))
    screen.progress(PROGRESS)
    screen.progress({"done": True})
    text = err.getvalue()
    for words in ("demo: InService  AllTraffic 2/3  (slot 1)", "AllTraffic Invocations", "25.0",
                  "subnet-a (us-east-1a) free", "ALERT headroom 4 < 10", "next sample (slot 2) in 3s",
                  "load: stage 2 | 16 users | 212 req/s | p50 4ms p99 31ms | 4200 requests, 3 errors",
                  "next: deploy sme-v2-local.yaml in 12s"):
        assert words in text, f"{words!r} not on the screen"
    assert screen._live is None, "the done line closes the screen"


def test_elsewhere_each_new_sample_is_one_line_and_the_load_line_comes_every_10_seconds(tmp_path):
    path = tmp_path / "watch.jsonl"
    err = io.StringIO()
    screen = RunScreen(Env(stdout=io.StringIO(), stderr=err), path, lambda: "")
    append(path, sample(0, 10.0, 12))
    screen.progress(PROGRESS)
    screen.progress(PROGRESS)  # the same second: no new sample, no second load line
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("watch: slot 0  InService  AllTraffic 2/3  AllTraffic.Invocations=10.0"), lines
    assert sum(line.startswith("watch: ") for line in lines) == 1, "one line per sample"
    assert sum(line.startswith("stage 2 | 16 users") for line in lines) == 1, lines
