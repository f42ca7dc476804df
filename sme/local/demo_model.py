"""The demo model: a small XGBoost binary classifier on scikit-learn's bundled breast-cancer data set
(no download), packed as SageMaker's built-in XGBoost container expects, plus a CSV payload file of
feature rows for load tests.

The model.tar.gz has one member, `xgboost-model`, in XGBoost's JSON model format: the 1.7-1 container
loads every top-level file with `Booster.load_model`, which recognises JSON by its content whatever
the file is called. `base_score` is set to 0.5 explicitly: xgboost 3.x writes it as `"[5E-1]"`, which
1.7 cannot parse and replaces with its default, 0.5, so only that value gives the same predictions on
both sides (an estimated base score, 3.x's default, would silently shift every prediction on 1.7).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

MODEL_MEMBER = "xgboost-model"
BASE_SCORE = 0.5
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "max_depth": 3,
    "eta": 0.3,
    "base_score": BASE_SCORE,
    "nthread": 1,
    "seed": 7,
}
ROUNDS = 20


@dataclass(frozen=True)
class DemoModel:
    model_tar: Path  # model.tar.gz with the single member xgboost-model
    payload_csv: Path  # one row of features per line: no label, no header
    n_features: int
    n_rows: int


def build_demo_model(out_dir: Path, *, payload_rows: int | None = None) -> DemoModel:
    """Train the demo classifier and write `model.tar.gz` and `payload.csv` into `out_dir`.

    The payload holds every row of the data set unless `payload_rows` asks for fewer. Takes about two
    seconds, most of it importing xgboost.
    """
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    booster = xgb.train(PARAMS, xgb.DMatrix(features, label=labels), num_boost_round=ROUNDS)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_tar = out_dir / "model.tar.gz"
    write_model_tar(model_tar, bytes(booster.save_raw(raw_format="json")))
    rows = features if payload_rows is None else features[:payload_rows]
    payload_csv = out_dir / "payload.csv"
    # repr of each float64 round-trips exactly, so the payload is the data set, not an approximation of it
    payload_csv.write_text("".join(",".join(map(repr, row)) + "\n" for row in np.asarray(rows).tolist()))
    return DemoModel(model_tar, payload_csv, n_features=features.shape[1], n_rows=len(rows))


def write_model_tar(path: Path, model_bytes: bytes, member: str = MODEL_MEMBER) -> None:
    """A model.tar.gz holding `model_bytes` as its one member."""
    info = tarfile.TarInfo(member)
    info.size = len(model_bytes)
    info.mode = 0o644
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(model_bytes))
