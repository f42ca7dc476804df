"""A pickled Booster serves as in the container (serve_utils.get_loaded_booster falls back to pickle.load),
but a pickle that names anything else is refused before it is built: a model file must not run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import xgboost as xgb

from sme.local.runtime.model_loader import ModelLoadError, load_boosters


def booster():
    rows = np.random.default_rng(7).random((80, 4))
    return xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(rows, label=(rows[:, 0] > 0.5)), 4), rows


def test_a_pickled_booster_predicts_what_the_booster_predicts(tmp_path):
    model, rows = booster()
    path = tmp_path / "xgboost-model"
    path.write_bytes(pickle.dumps(model))
    [loaded] = load_boosters((path,))
    assert np.array_equal(loaded.predict(xgb.DMatrix(rows)), model.predict(xgb.DMatrix(rows)))


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["SME_PWNED"],))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SME_PWNED", str(marker))
    path = tmp_path / "xgboost-model"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ModelLoadError, match=r"is a pickle .*names posix.system"):
        load_boosters((path,))
    assert not marker.exists(), "the pickle's code ran"
