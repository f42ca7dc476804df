"""The seed's experiment as sme ships it (examples/seed/ for AWS, sme/data/seed/ for the demo): each file loads through `sme run`'s own checks, at
full scale for AWS (run.yaml) and at demo scale for the twin (run-local.yaml, what `sme demo` runs; the demo
itself runs it end to end in tests/e2e/test_demo.py). The files they name that are the user's own (the AWS
payload) or made by the demo (the model, the payload) are put beside them, as a user or the demo would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sme.errors import ConfigError
from sme.run.config import load_run_file

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed"
LOCAL = Path(__file__).resolve().parents[3] / "sme" / "data" / "seed"  # in the package: what `sme demo` runs
AWS_FILES = ("run.yaml", "sme.yaml", "sme-v2.yaml", "loadtest.yaml")
LOCAL_FILES = ("run-local.yaml", "sme-local.yaml", "sme-v2-local.yaml", "loadtest-local.yaml")
TWIN = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}


def copy(names, to: Path) -> Path:
    for name in names:
        shutil.copy((LOCAL if name in LOCAL_FILES else SEED) / name, to / name)
    return to


def test_every_file_in_the_seed_folder_is_checked_here():
    shipped = {p.name for p in [*SEED.iterdir(), *LOCAL.iterdir()] if p.suffix == ".yaml"}
    assert shipped == set(AWS_FILES) | set(LOCAL_FILES), "a new seed file needs a test"


def test_the_aws_run_file_is_the_seeds_experiment_at_full_scale(tmp_path):
    copy(AWS_FILES, tmp_path)
    (tmp_path / "rows.csv").write_text("0.1,0.2,0.3\n")
    run = load_run_file(tmp_path / "run.yaml", environ={})
    assert run.twin_url is None and run.teardown
    exp = run.experiment
    assert exp.name == "churn" and len(exp.network.subnets) == 3 and exp.autoscaling["max"] == 8
    assert run.interval == 15 * 60, "watch every 15 minutes"
    assert [(s.duration, s.users) for s in run.load.stages] == [(600, 50), (7200, 200)], "a slow ramp, then 2 h"
    update, scale = run.events
    assert (update.kind, update.at) == ("deploy", 30 * 60) and update.deploy.name == "churn"
    assert update.deploy.update["strategy"] == "canary" and update.deploy.update["alarms"] == "auto"
    assert update.deploy.model.model_data != exp.model.model_data, "the update brings a new model"
    assert (scale.kind, scale.at, scale.scaling) == ("scale", 60 * 60, (4, 8))


def test_the_aws_run_file_names_the_payload_the_user_must_add(tmp_path):
    copy(AWS_FILES, tmp_path)
    with pytest.raises(ConfigError) as err:
        load_run_file(tmp_path / "run.yaml", environ={})
    assert "rows.csv" in err.value.render()


def test_the_commented_zone_failure_is_refused_against_aws_and_named(tmp_path):
    copy(AWS_FILES, tmp_path)
    (tmp_path / "rows.csv").write_text("0.1,0.2,0.3\n")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_file.read_text().replace("  # - {at: 80m, fail_zone", "  - {at: 80m, fail_zone"))
    with pytest.raises(ConfigError) as err:
        load_run_file(run_file, environ={})
    assert err.value.field == "events[2].fail_zone"


@pytest.fixture
def demo_folder(tmp_path, monkeypatch):
    from sme.local.demo_model import write_model_tar

    write_model_tar(tmp_path / "model.tar.gz", b'{"learner": {}}')
    (tmp_path / "payload.csv").write_text("1.0,2.0\n3.0,4.0\n")
    monkeypatch.chdir(tmp_path)  # a local model_data is a path from where sme runs (the demo runs it there)
    return tmp_path


def test_the_local_run_file_is_the_same_experiment_at_demo_scale(demo_folder):
    copy(LOCAL_FILES, demo_folder)
    run = load_run_file(demo_folder / "run-local.yaml", environ=TWIN)
    assert run.twin_url == TWIN["AWS_ENDPOINT_URL"] and run.teardown
    assert run.experiment.name == "demo" and len(run.experiment.network.subnets) == 3
    assert run.load.duration == 3 * 60 - 25, "the default `sme demo` (3 minutes) runs the file as shipped"
    [update] = run.events
    assert update.kind == "deploy" and update.deploy.update["strategy"] == "canary"
    assert update.at > run.load.stages[0].duration, "the update comes under the sustained load"
    shape = [(s.users, s.spawn_rate) for s in run.load.stages]
    assert shape[0][0] < shape[1][0] and shape[0][1] < shape[1][1], "a slow ramp, then more users"


@pytest.mark.parametrize("minutes", [1, 3, 10])
def test_the_demo_writes_the_shipped_files_with_the_twins_subnets_and_its_length(demo_folder, minutes):
    from sme.local.demo import load_seconds_for
    from sme.local.demo_seed import write_seed_files

    subnets, group = ["subnet-11111111", "subnet-22222222", "subnet-33333333"], "sg-44444444"
    seconds = load_seconds_for(minutes)
    run_file = write_seed_files(demo_folder, subnets, group, seconds)
    run = load_run_file(run_file, environ=TWIN)
    assert run.load.duration == seconds and run.events[0].at < seconds
    for exp in (run.experiment, run.events[0].deploy):
        assert list(exp.network.subnets) == subnets and list(exp.network.security_groups) == [group]
    written = (demo_folder / "sme-local.yaml").read_text()
    shipped = (LOCAL / "sme-local.yaml").read_text()
    assert written.count("\n#") >= shipped.count("\n#"), "the shipped comments are kept"
    assert yaml.safe_load(written)["endpoint"] == yaml.safe_load(shipped)["endpoint"]
