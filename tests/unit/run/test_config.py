"""The run file's checks: each bad file is refused (exit 2) with the file and the field named, before any call."""

from __future__ import annotations

import pytest

from sme.errors import ConfigError, ExitStatus, UserError
from sme.run.config import load_run_file

TWIN = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
AWS: dict[str, str] = {}


def experiment(name="churn", autoscaling="autoscaling: {min: 1, max: 4}", subnets=True):
    network = ("network: {subnets: [subnet-0a1b2c3d, subnet-1a2b3c4d], security_groups: [sg-0123abcd]}"
               if subnets else "")
    return f"""name: {name}
region: us-east-1
model: {{image: "xgboost:1.7-1", model_data: "s3://bucket/model.tar.gz",
         role: "arn:aws:iam::123456789012:role/SageMakerRole"}}
{network}
endpoint: {{variants: [{{name: AllTraffic, instance_type: ml.m5.large, count: 2}}]}}
{autoscaling}
"""


LOAD = """target: {endpoint: churn}
payload: {body: "1,2,3", content_type: text/csv}
stages: [{duration: 10m, users: 4, spawn_rate: 1}]
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "sme.yaml").write_text(experiment())
    (tmp_path / "sme-v2.yaml").write_text(experiment())
    (tmp_path / "flat.yaml").write_text(experiment(autoscaling=""))
    (tmp_path / "loadtest.yaml").write_text(LOAD)
    return tmp_path


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text("experiment: sme.yaml\nload: loadtest.yaml\n" + text)
    return path


def refused(path, environ=TWIN) -> ConfigError | UserError:
    with pytest.raises(UserError) as caught:
        load_run_file(path, environ)
    assert caught.value.status == ExitStatus.USAGE
    return caught.value


def test_a_good_file_gives_the_events_in_time_order_with_what_they_change(files):
    run = load_run_file(write(files, """watch: {interval: 15s}
events:
  - {at: 5m, fail_zone: us-east-1a}
  - {at: 1m, deploy: sme-v2.yaml}
  - {at: 3m, scale: {min: 3}}
teardown: false
"""), TWIN)
    assert [(e.kind, e.at) for e in run.events] == [("deploy", 60.0), ("scale", 180.0), ("fail_zone", 300.0)]
    assert run.events[1].scaling == (3, 4), "the new floor with the ceiling the experiment had"
    assert run.interval == 15.0 and run.teardown is False and run.twin_url == TWIN["AWS_ENDPOINT_URL"]
    assert run.load.duration == 600.0


def test_defaults_are_a_one_minute_watch_and_teardown(files):
    run = load_run_file(write(files, ""), AWS)
    assert (run.interval, run.teardown, run.events) == (60.0, True, ())


def test_a_missing_experiment_file_names_the_field(files):
    (files / "sme.yaml").unlink()
    err = refused(write(files, ""))
    assert err.field == "experiment" and "sme.yaml: no such file" in err.message


def test_a_missing_update_file_names_the_event(files):
    err = refused(write(files, "events: [{at: 1m, deploy: nowhere.yaml}]\n"))
    assert err.field == "events[0].deploy" and "nowhere.yaml" in err.message


def test_an_unknown_event_is_named_with_the_events_sme_knows(files):
    err = refused(write(files, "events: [{at: 1m, deploy: sme-v2.yaml}, {at: 2m, reboot: all}]\n"))
    assert err.field == "events[1].reboot" and "unknown event 'reboot'" in err.message
    assert "fail_zone" in (err.hint or "")


def test_two_events_in_one_entry_are_refused(files):
    err = refused(write(files, "events: [{at: 1m, deploy: sme-v2.yaml, scale: {min: 2}}]\n"))
    assert err.field == "events[0]" and "2 events" in err.message


def test_an_event_at_or_after_the_end_of_the_load_is_refused(files):
    err = refused(write(files, "events: [{at: 10m, scale: {min: 2}}]\n"))
    assert err.field == "events[0].at" and "not before the load ends (10m00s" in err.message


def test_fail_zone_against_aws_is_refused(files):
    err = refused(write(files, "events: [{at: 1m, fail_zone: us-east-1a}]\n"), AWS)
    assert err.field == "events[0].fail_zone" and "local twin" in err.message
    err = refused(write(files, "events: [{at: 1m, fail_zone: us-east-1a}]\n"),
                  {"AWS_ENDPOINT_URL": "https://sagemaker.example.com"})
    assert err.field == "events[0].fail_zone"


def test_fail_zone_of_an_endpoint_in_no_subnet_is_refused(files):
    (files / "sme.yaml").write_text(experiment(subnets=False))
    err = refused(write(files, "events: [{at: 1m, fail_zone: us-east-1a}]\n"))
    assert err.field == "events[0].fail_zone" and "no subnets" in err.message


def test_a_malformed_zone_names_its_field(files):
    err = refused(write(files, "events: [{at: 1m, fail_zone: east}]\n"))
    assert err.field == "events[0].fail_zone" and "availability zone" in (err.hint or "")


def test_scale_on_an_endpoint_without_autoscaling_is_refused(files):
    (files / "sme.yaml").write_text(experiment(autoscaling=""))
    err = refused(write(files, "events: [{at: 1m, scale: {min: 2}}]\n"))
    assert err.field == "events[0].scale" and "no `autoscaling:`" in err.message


def test_scale_follows_the_experiment_an_earlier_update_deployed(files):
    err = refused(write(files, "events: [{at: 1m, deploy: flat.yaml}, {at: 2m, scale: {max: 6}}]\n"))
    assert err.field == "events[1].scale" and "flat.yaml" in err.message
    run = load_run_file(write(files, "events: [{at: 1m, scale: {max: 6}}, {at: 2m, deploy: flat.yaml}]\n"), TWIN)
    assert run.events[0].scaling == (1, 6)


def test_a_floor_above_the_ceiling_is_refused(files):
    err = refused(write(files, "events: [{at: 1m, scale: {min: 5}}]\n"))
    assert err.field == "events[0].scale" and "min 5 would be above max 4" in err.message


def test_an_update_of_another_experiment_is_refused(files):
    (files / "other.yaml").write_text(experiment(name="other"))
    err = refused(write(files, "events: [{at: 1m, deploy: other.yaml}]\n"))
    assert err.field == "events[0].deploy" and "'other', not 'churn'" in err.message


def test_a_load_aimed_at_another_endpoint_is_refused(files):
    (files / "loadtest.yaml").write_text(LOAD.replace("endpoint: churn", "endpoint: other"))
    err = refused(write(files, ""))
    assert err.field == "target.endpoint" and "loadtest.yaml" in err.message


def test_an_unknown_top_level_field_and_a_bad_interval_are_named(files):
    assert refused(write(files, "teardwon: false\n")).field == "teardwon"
    assert refused(write(files, "watch: {interval: 0.5s}\n")).field == "watch.interval"
    assert refused(write(files, "events: [{at: soon, scale: {min: 2}}]\n")).field == "events[0].at"
