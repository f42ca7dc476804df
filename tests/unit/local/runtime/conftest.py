"""Fixtures for the container-contract tests: small models of each objective packed as model.tar.gz, real
runtime processes on 127.0.0.1 (one per model and environment, shared by the module), and an HTTP helper.

Expected predictions come from xgboost's own in-process `Booster.predict(DMatrix(...))`, never from the
runtime's code.
"""

from __future__ import annotations

import http.client
import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

READY_TIMEOUT = 30


@dataclass
class Model:
    tar: Path
    booster: object
    rows: np.ndarray  # feature rows the model was trained on (the first few are used as requests)

    def predict(self, rows) -> np.ndarray:
        import xgboost as xgb

        return self.booster.predict(xgb.DMatrix(np.asarray(rows, dtype=float), missing=np.nan))


def pack(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def train(objective: str, rows: np.ndarray, labels: np.ndarray, **params):
    import xgboost as xgb

    # base_score 0.5 predicts the same on xgboost 1.7 (the container) and 3.x (see FACTS.md).
    settings = {"objective": objective, "max_depth": 2, "base_score": 0.5, "nthread": 1, **params}
    return xgb.train(settings, xgb.DMatrix(rows, label=labels), 4)


@pytest.fixture(scope="session")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    return features[:200], labels[:200]


@pytest.fixture(scope="session")
def models(tmp_path_factory, breast_cancer):
    """One model per objective the contract treats differently, keyed by objective."""
    features, labels = breast_cancer
    out = tmp_path_factory.mktemp("contract-models")
    three_class = (features[:, 0] > 12).astype(int) + (features[:, 0] > 16).astype(int)
    specs = {
        "binary:logistic": (labels, {}),
        "binary:logitraw": (labels, {}),
        "binary:hinge": (labels, {}),
        "reg:squarederror": (features[:, 1], {}),
        "multi:softprob": (three_class, {"num_class": 3}),
        "multi:softmax": (three_class, {"num_class": 3}),
        "count:poisson": (np.round(features[:, 1]), {}),
    }
    built = {}
    for objective, (target, params) in specs.items():
        booster = train(objective, features, target, **params)
        name = objective.replace(":", "-")
        tar = pack(out / f"{name}.tar.gz", {"xgboost-model": bytes(booster.save_raw("json"))})
        built[objective] = Model(tar, booster, features)
    return built


@pytest.fixture(scope="module")
def runtime_for():
    """runtime_for(model, **env) -> a ready runtime for that model and environment, shared by the module."""
    from sme.local.runtime import start_runtime

    started = {}

    def get(model: Model, workers: int | None = 1, **env):
        key = (model.tar, workers, tuple(sorted(env.items())))
        if key not in started:
            runtime = start_runtime(model.tar, workers=workers, env=env)
            started[key] = runtime
            runtime.wait_ready(READY_TIMEOUT)
        return started[key]

    yield get
    # side by side: each takes about a second to stop (a module starts up to a dozen)
    with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
        list(pool.map(lambda runtime: runtime.stop(), started.values()))


def call(runtime, body: bytes | str | None, content_type: str | None = "text/csv", accept: str | None = None,
         path: str = "/invocations", method: str = "POST"):
    """(status, headers as a dict with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=20)
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


def csv_rows(rows, delimiter: str = ",") -> str:
    return "\n".join(delimiter.join(map(repr, np.asarray(row, dtype=float).tolist())) for row in rows)


def lines_of(body: bytes) -> list[str]:
    """A CSV answer's lines; asserts the container's layout: every line ends in a newline."""
    text = body.decode()
    assert text.endswith("\n"), f"each prediction line should end in a newline: {text!r}"
    return text[:-1].split("\n")
