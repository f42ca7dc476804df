"""The load test's limits, checked before anything starts: users per process, ladder length, body size,
finite numbers and durations; and a rate of 0 sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sme.errors import ConfigError
from sme.loadtest import config
from sme.loadtest.config import Stage
from sme.loadtest.shapes import ArrivalClock, Schedule
from sme.units import parse_duration

URL = "target: {url: 'http://127.0.0.1:9/x'}\npayload: {body: 'a'}\n"


def load(tmp_path: Path, text: str, machines: int | None = 1) -> config.LoadTest:
    path = tmp_path / "loadtest.yaml"
    path.write_text(text)
    return config.load(path, machines=machines)


def test_users_are_capped_per_load_process_and_machine(tmp_path):
    cap = config.MAX_USERS_PER_PROCESS
    load(tmp_path, URL + f"stages: [{{duration: 10s, users: {cap}}}]\n")
    with pytest.raises(ConfigError, match=r"stages\[0\].users: 5,001 users is more than 5,000"):
        load(tmp_path, URL + f"stages: [{{duration: 10s, users: {cap + 1}}}]\n")
    load(tmp_path, URL + f"stages: [{{duration: 10s, users: {cap * 2}}}]\nprocesses: 2\n")
    load(tmp_path, URL + f"stages: [{{duration: 10s, users: {cap * 3}}}]\n", machines=3)  # a master of 3
    load(tmp_path, URL + f"stages: [{{duration: 10s, users: {cap * 9}}}]\n", machines=None)  # a worker


def test_a_ladder_names_its_own_field_when_too_long_or_too_many_users(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, URL + "stages:\n  - {duration: 5s, users: 1}\n"
                             "  - steps: {kind: users, start: 100, step: 100, every: 5s, count: 60, spawn_rate: 100}\n")
    assert info.value.field == "stages[1].steps" and "6,000 users" in info.value.message
    with pytest.raises(ConfigError) as info:
        load(tmp_path, URL + "stages:\n  - steps: {kind: rate, start: 1, step: 1, every: 1s, max: 5000}\n")
    assert info.value.field == "stages[0].steps.max" and "5,000 steps" in info.value.message
    assert len(load(tmp_path, URL + "stages:\n  - steps: {kind: rate, start: 1, step: 1, every: 1s, "
                                    "count: 1000}\n").stages) == 1000


def test_written_stages_beyond_the_limit_are_refused(tmp_path):
    ladder = "  - steps: {kind: rate, start: 1, step: 1, every: 1s, count: 600}\n"
    with pytest.raises(ConfigError, match="1200 stages .* more than the 1000"):
        load(tmp_path, URL + "stages:\n" + ladder * 2)


def test_body_size_depends_on_the_target(tmp_path):
    (tmp_path / "seven.bin").write_bytes(b"x" * (7 << 20))
    endpoint = "target: {endpoint: churn}\nstages: [{duration: 1s, users: 1}]\n"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, endpoint + "payload: {file: seven.bin}\n")
    assert info.value.field == "payload.file" and "7.0 MB" in info.value.message and "6 MB" in info.value.hint
    with pytest.raises(ConfigError, match="payload.body: a body of 6.0 MB"):
        load(tmp_path, endpoint + "payload: {body: '" + "y" * (6291456 + 1) + "'}\n")
    url = load(tmp_path, "target: {url: 'http://127.0.0.1:9/'}\nstages: [{duration: 1s, users: 1}]\n"
                         "payload: {file: seven.bin}\n")
    assert len(url.payload.bodies[0]) == 7 << 20


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "9" * 400, "9" * 400 + "h"])
def test_durations_are_finite(value):
    with pytest.raises(ValueError, match="not a finite duration"):
        parse_duration(value)
    assert parse_duration("1h30m") == 5400.0


def test_a_rate_of_zero_sends_no_request():
    assert list(ArrivalClock(Schedule([Stage(10, rate=0.0, kind="rate")]))) == []
    # arrivals start where the rate does: at once for a non-zero rate, at the ramp's start otherwise
    after_pause = list(ArrivalClock(Schedule([Stage(2, rate=0.0, kind="rate"), Stage(2, rate=2.0, kind="rate")])))
    assert after_pause == [2.0, 2.5, 3.0, 3.5]
    assert list(ArrivalClock(Schedule([Stage(1, rate=3.0, kind="rate")]))) == pytest.approx([0, 1 / 3, 2 / 3])
