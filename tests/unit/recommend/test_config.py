"""The recommend file: every bad file is refused before anything is deployed, naming the file and the field."""

from __future__ import annotations

import pytest

from sme.errors import ConfigError, ExitStatus
from sme.recommend import config

EXPERIMENT = """name: churn
region: us-east-1
model: {image: xgboost:1.7-1, model_data: s3://bucket/model.tar.gz, role: create}
endpoint:
  variants: [{instance_type: ml.m5.large}]
autoscaling: {min: 1, max: 4}
"""
VPC = "network: {subnets: [subnet-0a1b2c3d], security_groups: [sg-0a1b2c3d]}\n"
LOAD = """load:
  payload: {body: "1,2,3", content_type: text/csv}
  stages: [{steps: {kind: rate, start: 10, step: 10, every: 5s, count: 3, until_slo_breach: true}}]
slo: {p99_ms: 100, error_rate: 0.001}
peak_rps: 500
"""


def write(tmp_path, candidates: str, *, experiment: str = EXPERIMENT, load: str = LOAD, extra: str = ""):
    (tmp_path / "sme.yaml").write_text(experiment)
    path = tmp_path / "recommend.yaml"
    path.write_text(f"experiment: sme.yaml\ncandidates:\n{candidates}{load}{extra}")
    return path


def refused(path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert err.value.status == ExitStatus.USAGE and str(path) in err.value.message
    return err.value


def test_a_good_file_gives_each_candidate_its_own_endpoint_and_the_base_everything_else(tmp_path):
    rec = config.load(write(tmp_path, "  - {instance_type: ml.c5.large}\n"
                                      "  - {instance_type: ml.m5.xlarge, environment: {SAGEMAKER_MODEL_SERVER_WORKERS: 4}}\n"
                                      "  - {serverless: {memory_mb: 4096, max_concurrency: 20}}\n"))
    assert [c.label for c in rec.candidates] == ["c5-large", "m5-xlarge", "serverless-4096mb-20"]
    exp = config.experiment_for(rec, rec.candidates[1], "churn-abc123-2", "abc123")
    assert exp["endpoint"] == {"variants": [{"name": "AllTraffic", "instance_type": "ml.m5.xlarge", "count": 1}]}
    assert exp["model"]["environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "4"}
    assert "autoscaling" not in exp, "a ladder measures a fixed fleet"
    assert exp["tags"] == {"sme-sweep": "abc123"} and exp["name"] == "churn-abc123-2"
    assert rec.load["slo"] == {"p99_ms": 100, "error_rate": 0.001}, "the sweep's SLO goes into each load test"
    assert config.candidate_name(rec, rec.candidates[2], "abc123") == "churn-abc123-3"


def test_an_unknown_instance_type_is_named_with_what_it_may_have_meant(tmp_path):
    err = refused(write(tmp_path, "  - {instance_type: ml.c5.larg}\n"))
    assert err.field == "candidates[0].instance_type"
    assert "ml.c5.large" in err.hint


def test_a_serverless_candidate_with_a_vpc_experiment_is_refused_as_aws_would(tmp_path):
    err = refused(write(tmp_path, "  - {instance_type: ml.c5.large}\n  - {serverless: {memory_mb: 2048, "
                                  "max_concurrency: 5}}\n", experiment=EXPERIMENT + VPC))
    assert err.field == "candidates[1].serverless"
    assert "network.subnets" in err.message and "does not run in a VPC" in err.message


def test_a_load_with_a_target_is_refused(tmp_path):
    err = refused(write(tmp_path, "  - {instance_type: ml.c5.large}\n",
                        load=LOAD.replace("load:\n", "load:\n  target: {endpoint: churn}\n")))
    assert err.field == "load.target"


def test_a_bad_load_field_is_named_under_load(tmp_path):
    err = refused(write(tmp_path, "  - {instance_type: ml.c5.large}\n", load=LOAD.replace("every: 5s", "every: soon")))
    assert err.field.startswith("load.stages[0]"), err.field


def test_a_missing_experiment_file_is_named(tmp_path):
    path = write(tmp_path, "  - {instance_type: ml.c5.large}\n")
    (tmp_path / "sme.yaml").unlink()
    assert refused(path).field == "experiment"


@pytest.mark.parametrize("candidate, field", [
    ("  - {instance_type: ml.c5.large, serverless: {memory_mb: 1024, max_concurrency: 1}}\n", "candidates[0]"),
    ("  - {serverless: {memory_mb: 1000, max_concurrency: 1}}\n", "candidates[0].serverless.memory_mb"),
    ("  - {instance_type: ml.c5.large}\n  - {instance_type: ml.c5.large}\n", "candidates[1].name"),
])
def test_candidates_aws_or_the_sweep_cannot_take_are_named(tmp_path, candidate, field):
    assert refused(write(tmp_path, candidate)).field == field
