"""The experiment and load-test files shipped under examples/<kind>/ (what `sme demo --kind` runs, written for
AWS) are files sme accepts: read by the same loaders `sme deploy -c` and `sme loadtest -c` use, with the local
files they name (a model.tar.gz, the payload) put beside them as a user would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = ("serverless", "async", "llm")


@pytest.fixture
def example_dir(tmp_path, monkeypatch):
    from sme.local.demo_model import write_model_tar

    write_model_tar(tmp_path / "model.tar.gz", b'{"learner": {}}')
    (tmp_path / "rows.csv").write_text("1.0,2.0\n3.0,4.0\n")
    (tmp_path / "batch.csv").write_text("1.0,2.0\n3.0,4.0\n")
    monkeypatch.chdir(tmp_path)  # a local model_data is a path from where sme runs
    return tmp_path


@pytest.mark.parametrize("kind", KINDS)
def test_each_kinds_example_experiment_is_one_sme_deploys(example_dir, kind):
    from sme.config import Overrides, load_experiment

    path = example_dir / f"{kind}.yaml"
    shutil.copy(EXAMPLES / kind / "sme.yaml", path)
    exp = load_experiment(str(path), Overrides())
    variant = exp.variants[0]
    if kind == "serverless":
        assert variant.serverless is not None and variant.serverless.max_concurrency == 2
    elif kind == "async":
        assert exp.async_inference.output.startswith("s3://")
    else:
        assert dict(exp.model.environment)["HF_MODEL_ID"] == "/opt/ml/model"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kinds_example_load_test_is_one_sme_runs(example_dir, kind):
    from sme.loadtest.config import load

    path = example_dir / "loadtest.yaml"
    shutil.copy(EXAMPLES / kind / "loadtest.yaml", path)
    lt = load(path)
    assert lt.target.kind == "endpoint"
    assert lt.target.stream == (kind == "llm")
    if kind == "llm":
        assert [s.users for s in lt.stages] == [2, 4, 6, 8], "a ladder of users"
