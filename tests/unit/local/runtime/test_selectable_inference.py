"""Selectable inference (SAGEMAKER_INFERENCE_OUTPUT) and ensembles, ported from the SageMaker XGBoost
container's own unit tests to HTTP against the real runtime.

Sources are in aws/sagemaker-xgboost-container at tag v1.7-1-1: `test/unit/algorithm_mode/test_serve_utils.py`
(TEST_SERVE_UTILS below) and `src/sagemaker_xgboost_container/algorithm_mode/serve_utils.py` (SERVE_UTILS).
Expected values are computed here from xgboost's in-process predictions with the container's formulas.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tests.unit.local.runtime.conftest import Model, call, csv_rows, pack, train

pytestmark = pytest.mark.timeout(120)
ALL_BINARY_KEYS = "predicted_label,labels,probability,probabilities,raw_score,raw_scores"


def _predictions(runtime, model: Model, n: int = 3) -> list[dict]:
    status, _, body = call(runtime, csv_rows(model.rows[:n]), accept="application/json")
    assert status == 200, body
    return json.loads(body)["predictions"]


def test_binary_logistic_all_keys(runtime_for, models):
    """TEST_SERVE_UTILS L112-130 and L162-173 (TEST_PREDICTIONS_BINARY_LOG)."""
    model = models["binary:logistic"]
    got = _predictions(runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT=ALL_BINARY_KEYS), model)
    expected = [{"predicted_label": int(p > 0.5), "labels": [0, 1], "probability": p, "probabilities": [1.0 - p, p],
                 "raw_score": p, "raw_scores": [1.0 - p, p]}
                for p in (np.float32(v).item() for v in model.predict(model.rows[:3]))]
    assert got == expected
    assert list(got[0]) == ALL_BINARY_KEYS.split(","), "JSON keys come in the container's fixed order"


def test_regression_offers_predicted_score_and_nan_for_the_rest(runtime_for, models):
    """TEST_SERVE_UTILS L132-134 and L176-183: keys the objective does not offer are NaN; the setting is
    read without spaces and in lower case (SERVE_UTILS L250)."""
    model = models["reg:squarederror"]
    runtime = runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT="Predicted_Score, predicted_label,foo")
    got = _predictions(runtime, model, n=2)
    assert [p["predicted_score"] for p in got] == [np.float32(v).item() for v in model.predict(model.rows[:2])]
    assert all(math.isnan(p["predicted_label"]) and math.isnan(p["foo"]) for p in got)


def test_objective_without_selectable_output_is_500(runtime_for, models):
    """TEST_SERVE_UTILS L186-188; the container answers 500 (src/.../algorithm_mode/serve.py L200-202)."""
    model = models["count:poisson"]
    status, _, body = call(runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT="predicted_score"), csv_rows(model.rows[:1]))
    assert status == 500 and b"count:poisson" in body, body


def test_multiclass_probabilities(runtime_for, models):
    """TEST_SERVE_UTILS L191-199 (labels), L206-216 (predicted_label = argmax), L223-228 (probability = max),
    L235-243 (probabilities), L250-259 (raw_score), L266-275 (raw_scores), for multi:softprob."""
    model = models["multi:softprob"]
    got = _predictions(runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT=ALL_BINARY_KEYS), model)
    for entry, row in zip(got, model.predict(model.rows[:3])):
        row = [np.float32(v).item() for v in row]
        assert entry == {"predicted_label": int(np.argmax(row)), "labels": [0, 1, 2], "probability": max(row),
                         "probabilities": row, "raw_score": max(row), "raw_scores": row}


@pytest.mark.parametrize("objective", ["binary:logitraw", "binary:hinge", "multi:softmax"])
def test_score_only_classifiers(runtime_for, models, objective):
    """TEST_SERVE_UTILS L206-216 (predicted_label: int(raw > 0) for logitraw, the raw value for hinge and
    softmax), L250-259 (raw_score), L266-275 (raw_scores = [1 - raw, raw]); probability keys are NaN
    (SERVE_UTILS L84-88)."""
    model = models[objective]
    got = _predictions(runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT=ALL_BINARY_KEYS), model)
    for entry, raw in zip(got, model.predict(model.rows[:3])):
        raw = np.float32(raw).item()
        label = int(raw > 0) if objective == "binary:logitraw" else raw
        assert {k: entry[k] for k in ("predicted_label", "raw_score", "raw_scores")} == {
            "predicted_label": label, "raw_score": raw, "raw_scores": [1.0 - raw, raw]}
        assert math.isnan(entry["probability"]) and math.isnan(entry["probabilities"])


@pytest.fixture(scope="module")
def two_keys(runtime_for, models):
    """TEST_KEYS of TEST_SERVE_UTILS L106-110: predicted_label and probabilities."""
    model = models["binary:logistic"]
    expected = [{"predicted_label": int(p > 0.5), "probabilities": [1.0 - p, p]}
                for p in (np.float32(v).item() for v in model.predict(model.rows[:2]))]
    return runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities"), model, expected


def test_selected_json(two_keys):
    """TEST_SERVE_UTILS L282-284."""
    runtime, model, expected = two_keys
    headers, body = _raw(runtime, model, "application/json")
    assert headers["content-type"] == "application/json"
    assert body.decode() == json.dumps({"predictions": expected})


def test_selected_json_lines(two_keys):
    """TEST_SERVE_UTILS L287-295 (and test/unit/test_encoder.py L114-129): one object per line, each ending in a newline."""
    runtime, model, expected = two_keys
    headers, body = _raw(runtime, model, "application/jsonlines")
    assert headers["content-type"] == "application/jsonlines"
    assert body.decode() == "".join(json.dumps(entry) + "\n" for entry in expected)


def test_selected_csv(two_keys):
    """TEST_SERVE_UTILS L316-318: lists are quoted, rows joined by newlines with none after the last."""
    runtime, model, expected = two_keys
    headers, body = _raw(runtime, model, "text/csv")
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert body.decode() == "\n".join(f'{e["predicted_label"]},"{e["probabilities"]}"' for e in expected)


def test_selected_csv_under_batch_ends_in_a_newline(runtime_for, models):
    """SERVE_UTILS L503-507."""
    model = models["binary:logistic"]
    runtime = runtime_for(model, SAGEMAKER_INFERENCE_OUTPUT="probability", SAGEMAKER_BATCH="true")
    _, body = _raw(runtime, model, "text/csv")
    assert body.decode() == "".join(f"{np.float32(p).item()}\n" for p in model.predict(model.rows[:2]))


def test_selected_recordio_protobuf(two_keys):
    """TEST_SERVE_UTILS L298-313, read back with the protobuf library and SageMaker's Record schema."""
    runtime, model, expected = two_keys
    headers, body = _raw(runtime, model, "application/x-recordio-protobuf")
    assert headers["content-type"] == "application/x-recordio-protobuf"
    records = _read_records(body)
    assert len(records) == len(expected)
    for record, entry in zip(records, expected):
        assert list(record.label["predicted_label"].float32_tensor.values) == [entry["predicted_label"]]
        np.testing.assert_allclose(record.label["probabilities"].float32_tensor.values, entry["probabilities"], rtol=1e-6)


def _raw(runtime, model, accept):
    status, headers, body = call(runtime, csv_rows(model.rows[:2]), accept=accept)
    assert status == 200, body
    return headers, body


def _read_records(body: bytes) -> list:
    """Frames per sagemaker-containers' _recordio (magic, length, payload padded to 4 bytes), each parsed as a
    Record built from SageMaker's record.proto with the protobuf library (an independent reader)."""
    import struct

    record_class = _record_class()
    records, at = [], 0
    while at < len(body):
        magic, length = struct.unpack_from("<II", body, at)
        assert magic == 0xCED7230A
        record = record_class()
        record.ParseFromString(body[at + 8:at + 8 + length])
        records.append(record)
        at += 8 + length + (-length % 4)
    return records


def _record_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    FD = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="sme_test_record.proto", package="smetest", syntax="proto2")
    tensor = file.message_type.add(name="Float32Tensor")
    tensor.field.add(name="values", number=1, type=FD.TYPE_FLOAT, label=FD.LABEL_REPEATED).options.packed = True
    value = file.message_type.add(name="Value")
    value.field.add(name="float32_tensor", number=2, type=FD.TYPE_MESSAGE, label=FD.LABEL_OPTIONAL,
                    type_name=".smetest.Float32Tensor")
    record = file.message_type.add(name="Record")
    entry = record.nested_type.add(name="LabelEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=FD.TYPE_MESSAGE, label=FD.LABEL_OPTIONAL, type_name=".smetest.Value")
    record.field.add(name="label", number=2, type=FD.TYPE_MESSAGE, label=FD.LABEL_REPEATED,
                     type_name=".smetest.Record.LabelEntry")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("smetest.Record"))


# ---------------------------------------------------------------- ensembles


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory, breast_cancer):
    """Two boosters in one model.tar.gz, as the container's ensemble mode reads them (SERVE_UTILS L155-194)."""
    features, labels = breast_cancer
    out = tmp_path_factory.mktemp("ensemble")
    boosters = [train("binary:logistic", features, labels, max_depth=depth) for depth in (1, 3)]
    files = {f"model-{i}": bytes(b.save_raw("json")) for i, b in enumerate(boosters)}
    return Model(pack(out / "ensemble.tar.gz", files), boosters[0], features), boosters


def test_ensemble_averages_every_model_file(runtime_for, ensemble):
    """TEST_SERVE_UTILS L326-328 (enabled by default) and SERVE_UTILS L233-235 (averaged)."""
    import xgboost as xgb

    model, boosters = ensemble
    _, body = _raw(runtime_for(model), model, "text/csv")
    expected = np.mean([b.predict(xgb.DMatrix(model.rows[:2])) for b in boosters], axis=0)
    np.testing.assert_allclose([float(v) for v in body.decode().splitlines()], expected, rtol=1e-6)


def test_ensemble_switched_off_serves_one_model_file(runtime_for, ensemble):
    """TEST_SERVE_UTILS L330-332; SERVE_UTILS L168-170 (the first file only)."""
    model, boosters = ensemble
    _, body = _raw(runtime_for(model, SAGEMAKER_INFERENCE_ENSEMBLE="false"), model, "text/csv")
    np.testing.assert_allclose([float(v) for v in body.decode().splitlines()], model.predict(model.rows[:2]), rtol=1e-6)


def test_class_ensembles_vote(tmp_path, runtime_for, breast_cancer):
    """SERVE_UTILS L230-232: multi:softmax and binary:hinge ensembles take the most common class (ties: the
    smallest)."""
    import xgboost as xgb

    features, _ = breast_cancer
    classes = (features[:, 0] > 12).astype(int) + (features[:, 0] > 16).astype(int)
    odd = np.arange(len(classes)) % 2
    # Boosters that disagree: on even rows two of three agree, on odd rows all three differ (a tie).
    targets = (classes, (classes + 1) % 3, np.where(odd, (classes + 2) % 3, classes))
    boosters = [train("multi:softmax", features, t, num_class=3, max_depth=6, eta=1.0) for t in targets]
    tar = pack(tmp_path / "vote.tar.gz", {f"m{i}": bytes(b.save_raw("json")) for i, b in enumerate(boosters)})
    model = Model(tar, boosters[0], features)
    status, _, body = call(runtime_for(model), csv_rows(features[:40]))
    assert status == 200, body
    votes = np.array([b.predict(xgb.DMatrix(features[:40])) for b in boosters])
    expected = [min(set(column), key=lambda c: (-list(column).count(c), c)) for column in votes.T]
    assert len({len(set(column)) for column in votes.T}) > 1, "the boosters should agree on some rows, tie on others"
    assert [float(v) for v in body.decode().splitlines()] == expected
