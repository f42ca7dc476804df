"""Black-box cases of the SageMaker XGBoost container's serving code, ported to HTTP against the real runtime.

Each case names where it comes from in aws/sagemaker-xgboost-container at tag v1.7-1-1 (what `xgboost:1.7-1`
names; `src/` is `src/sagemaker_xgboost_container/`): its unit tests (test/unit/...) where they have one,
else the serving code whose behaviour it pins. Selectable inference is in test_selectable_inference.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tests.unit.local.runtime.conftest import call, csv_rows, lines_of

pytestmark = pytest.mark.timeout(120)
SERVE = "src/algorithm_mode/serve.py"
SERVE_UTILS = "src/algorithm_mode/serve_utils.py"
TEST_SERVE = "test/unit/algorithm_mode/test_serve.py"
TEST_SERVE_UTILS = "test/unit/algorithm_mode/test_serve_utils.py"
TEST_ENCODER = "test/unit/test_encoder.py"


@pytest.fixture(scope="module")
def binary(models):
    return models["binary:logistic"]


@pytest.fixture(scope="module")
def default_runtime(runtime_for, binary):
    """The container's defaults: no environment at all, workers included (one per CPU)."""
    return runtime_for(binary, workers=None)


# ---------------------------------------------------------------- the answer's layout


def test_csv_answer_is_one_prediction_per_line(default_runtime, binary):
    """src/algorithm_mode/serve.py L240-249 with sagemaker-containers' array_to_csv: one line per prediction,
    each ending in a newline, Content-Type text/csv; charset=utf-8."""
    expected = binary.predict(binary.rows[:3])
    status, headers, body = call(default_runtime, csv_rows(binary.rows[:3]))
    assert status == 200, body
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert body.decode() == "".join(f"{v!r}\n" for v in expected.tolist())


def test_multiclass_csv_answer_is_one_row_per_line(runtime_for, models):
    """src/algorithm_mode/serve.py L240-249: a multi-value prediction is `a,b,c\\n` per row."""
    model = models["multi:softprob"]
    status, _, body = call(runtime_for(model), csv_rows(model.rows[:4]))
    assert status == 200, body
    got = np.array([[float(v) for v in line.split(",")] for line in lines_of(body)])
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, model.predict(model.rows[:4]), rtol=1e-6)


def test_json_answer(default_runtime, binary):
    """test/unit/algorithm_mode/test_serve_utils.py L340-347 (encode_predictions_as_json) and test_serve.py
    L40-43 (an Accept parameter is dropped)."""
    status, headers, body = call(default_runtime, csv_rows(binary.rows[:2]), accept="application/json;verbose=True")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body.decode() == json.dumps({"predictions": [{"score": v} for v in binary.predict(binary.rows[:2]).tolist()]})


def test_default_accept_comes_from_the_environment(runtime_for, binary):
    """test/unit/algorithm_mode/test_serve.py L46-50; src/algorithm_mode/serve.py L172-174."""
    runtime = runtime_for(binary, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    for accept in (None, "*/*"):
        status, headers, body = call(runtime, csv_rows(binary.rows[:1]), accept=accept)
        assert (status, headers["content-type"]) == (200, "application/json"), body
        assert json.loads(body)["predictions"][0]["score"] == pytest.approx(float(binary.predict(binary.rows[:1])[0]))


@pytest.mark.parametrize("accept, status", [
    ("text/libsvm", 406),  # test/unit/algorithm_mode/test_serve.py L53-57
    ("text/csv, application/json", 406),  # src/algorithm_mode/serve.py L172-178: one type, not a list
    ("application/jsonlines", 500),  # src/algorithm_mode/serve.py L247: sagemaker-containers cannot encode it
    ("application/x-recordio-protobuf", 500),  # same line, same reason
])
def test_accepts_the_container_cannot_answer(default_runtime, binary, accept, status):
    got, _, body = call(default_runtime, csv_rows(binary.rows[:1]), accept=accept)
    assert got == status, body


def test_batch_transform_answers_str_per_line(runtime_for, models):
    """src/algorithm_mode/serve.py L241-242: under SAGEMAKER_BATCH every Accept gets one str() per line."""
    binary, multi = models["binary:logistic"], models["multi:softprob"]
    status, headers, body = call(runtime_for(binary, SAGEMAKER_BATCH="true"), csv_rows(binary.rows[:3]),
                                 accept="application/json")
    assert (status, headers["content-type"]) == (200, "application/json"), body
    assert body.decode() == "".join(f"{v}\n" for v in binary.predict(binary.rows[:3]).tolist())
    status, _, body = call(runtime_for(multi, SAGEMAKER_BATCH="true"), csv_rows(multi.rows[:2]))
    assert body.decode() == "".join(f"{row}\n" for row in multi.predict(multi.rows[:2]).tolist())


# ---------------------------------------------------------------- what the container reads


@pytest.mark.parametrize("content_type", ["csv", "text/csv", "text/csv; label_size=1", "text/csv;label_size = 1",
                                          "text/csv; charset=utf-8", "text/csv; label_size=1; charset=utf-8",
                                          "TEXT/CSV"])
def test_csv_content_types(default_runtime, content_type):
    """test/unit/algorithm_mode/test_serve_utils.py L37-51 (the upper-case one: src/data_utils.py L103)."""
    status, _, body = call(default_runtime, b"1,1", content_type=content_type)
    assert status == 200 and len(lines_of(body)) == 1, body


@pytest.mark.parametrize("content_type", ["libsvm", "text/libsvm", "text/x-libsvm", None])
def test_libsvm_content_types(default_runtime, content_type):
    """test/unit/algorithm_mode/test_serve_utils.py L54-58; no Content-Type at all means libsvm
    (src/data_utils.py L97-98)."""
    status, _, body = call(default_runtime, b"0:1", content_type=content_type)
    assert status == 200 and len(lines_of(body)) == 1, body


@pytest.mark.parametrize("content_type", [
    "incorrect_format", "text/csv; label_size=5", "text/csv; label_size=1=1",  # test_serve_utils.py L61-74
    "text/csv; label_size=1; label_size=2", "label_size=1; text/csv",
    "application/octet-stream",  # test/unit/test_encoder.py L94-96
    "application/json", "application/x-libsvm", "application/x-parquet", "",  # src/data_utils.py L86-122
])
def test_content_types_the_container_refuses(default_runtime, content_type):
    status, _, body = call(default_runtime, b"1,1", content_type=content_type)
    assert status == 415, body


def test_a_header_less_csv_body_is_read_as_libsvm_and_refused(default_runtime):
    """src/data_utils.py L97-98 and src/algorithm_mode/serve_utils.py L94-115: '1,2,3' has no index:value."""
    status, _, body = call(default_runtime, b"1,2,3", content_type=None)
    assert status == 415 and b"libsvm" in body, body


@pytest.mark.parametrize("body, rows", [("42,6,9", 1), ("42.0,6.0,9.0", 1), ("42\n6\n9\n", 3)])
def test_csv_bodies(default_runtime, binary, body, rows):
    """test/unit/test_encoder.py L27-30: fewer columns than the model has are missing values."""
    status, _, answer = call(default_runtime, body)
    assert status == 200, answer
    width = len(body.strip().split("\n")[0].split(","))
    request = [[float(v) for v in line.split(",")] + [np.nan] * (30 - width) for line in body.strip().split("\n")]
    np.testing.assert_allclose([float(v) for v in lines_of(answer)], binary.predict(request), rtol=1e-6)
    assert len(lines_of(answer)) == rows


@pytest.mark.parametrize("body", ["1,2,3,12:12:12", "1,2,3,2019-1-1", "1,2,3,2019-1-1 12:12:12",
                                  "1,2,3,2019-1-1 12:12:12+00", "1,2,3,-14 days", "1,2,3\n1,2,c",
                                  "1,2\n\n3,4", "a,b"])
def test_csv_bodies_the_container_refuses(default_runtime, body):
    """test/unit/test_encoder.py L33-49; a blank inner line is a one-field row among wider ones
    (src/encoder.py L55); src/algorithm_mode/serve.py L213-217 answers 415."""
    status, _, answer = call(default_runtime, body)
    assert status == 415 and b"csv" in answer, answer


@pytest.mark.parametrize("delimiter", ["\t", ";", " "])
def test_csv_delimiter_is_sniffed(default_runtime, binary, delimiter):
    """src/encoder.py L51-55: csv.Sniffer picks the delimiter from the first line."""
    status, _, body = call(default_runtime, csv_rows(binary.rows[:2], delimiter))
    assert status == 200, body
    np.testing.assert_allclose([float(v) for v in lines_of(body)], binary.predict(binary.rows[:2]), rtol=1e-6)


def test_test_encoder_csv_with_charset(default_runtime):
    """test/unit/test_encoder.py L108-111."""
    status, _, body = call(default_runtime, "42.0,6.0,9.0\n42.0,6.0,9.0", content_type="text/csv; charset=UTF-8")
    assert status == 200 and len(lines_of(body)) == 2, body


def test_more_columns_than_the_model_has_is_400(default_runtime):
    """src/algorithm_mode/serve.py L225-229: xgboost refuses the prediction."""
    status, _, body = call(default_runtime, ",".join(["1"] * 31))
    assert status == 400 and b"Unable to evaluate payload" in body, body


@pytest.mark.parametrize("body", ["0 0:1 5:1", "0:1 5:1"])
def test_libsvm_bodies(default_runtime, binary, body):
    """test/unit/test_encoder.py L52-63, read as src/algorithm_mode/serve_utils.py L94-115 does: a token
    without ':' (the label) is skipped, indexes are 0-based columns, absent ones are missing."""
    status, _, answer = call(default_runtime, body, content_type="text/libsvm")
    assert status == 200, answer
    row = [np.nan] * 30
    row[0], row[5] = 1.0, 1.0
    assert float(lines_of(answer)[0]) == pytest.approx(float(binary.predict([row])[0]), rel=1e-6)


@pytest.mark.parametrize("body", ["0:1\t5:1", "1", "0:x"])
def test_libsvm_bodies_the_container_refuses(default_runtime, body):
    """src/algorithm_mode/serve_utils.py L94-115: tabs are not separators, a row needs a feature."""
    status, _, answer = call(default_runtime, body, content_type="text/libsvm")
    assert status == 415, answer


def test_libsvm_indexes_are_one_based_on_3x_images(runtime_for, binary):
    """Only from 3.x (serve_utils.py at master, the 'Shift 1-based libsvm indices' lines): when no index
    is 0 they all move down by one. On 1.7-1 the same body names columns 1 and 2."""
    body = "1:0.5 2:20.0"
    _, _, old = call(runtime_for(binary), body, content_type="text/libsvm")
    _, _, new = call(runtime_for(binary, SME_CONTAINER_IMAGE="683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                                                              "sagemaker-xgboost:3.0-5"), body, content_type="text/libsvm")
    old_row, new_row = [np.nan] * 30, [np.nan] * 30
    old_row[1:3], new_row[0:2] = [0.5, 20.0], [0.5, 20.0]
    assert float(old) == pytest.approx(float(binary.predict([old_row])[0]), rel=1e-6)
    assert float(new) == pytest.approx(float(binary.predict([new_row])[0]), rel=1e-6)


RECORDIO_BODIES = [  # test/unit/test_encoder.py L66-78
    b"\n#\xd7\xce\x13\x00\x00\x00\n\x11\n\x06values\x12\x07:\x05\n\x03*\x06\t\x00",  # 42,6,9
    b"\n#\xd7\xce(\x00\x00\x00\n&\n\x06values\x12\x1c\x1a\x1a\n\x18\x00\x00\x00"  # 42.0,6.0,9.0
    b'\x00\x00\x00E@\x00\x00\x00\x00\x00\x00\x18@\x00\x00\x00\x00\x00\x00"@',
    b"\n#\xd7\xce\x19\x00\x00\x00\n\x17\n\x06values\x12\r:\x0b\n\x02\x01\x01\x12"  # 0:1 5:1
    b"\x02\x00\x05\x1a\x01\x06\x00\x00\x00",
]


@pytest.mark.parametrize("body, row", [(RECORDIO_BODIES[0], {0: 42, 1: 6, 2: 9}),
                                       (RECORDIO_BODIES[1], {0: 42, 1: 6, 2: 9}), (RECORDIO_BODIES[2], {0: 1, 5: 1})])
def test_recordio_protobuf_bodies(default_runtime, binary, body, row):
    """test/unit/test_encoder.py L66-78; test_serve_utils.py L92-102 (recordio-protobuf is a valid input)."""
    status, _, answer = call(default_runtime, body, content_type="application/x-recordio-protobuf")
    assert status == 200, answer
    request = [row.get(i, np.nan) for i in range(30)]
    assert float(lines_of(answer)[0]) == pytest.approx(float(binary.predict([request])[0]), rel=1e-6)


# ---------------------------------------------------------------- status codes and server settings


def test_empty_body_is_204(default_runtime):
    """src/algorithm_mode/serve.py L209-211."""
    assert call(default_runtime, b"")[::2] == (204, b"")


def test_ping_is_get_only(default_runtime):
    """src/algorithm_mode/serve.py L138-142: /ping is routed for GET; Flask answers 405 to POST."""
    assert call(default_runtime, None, path="/ping", method="GET")[0] == 200
    assert call(default_runtime, b"", path="/ping", method="POST")[0] == 405


def test_execution_parameters(default_runtime):
    """test/unit/algorithm_mode/test_serve.py L23-28; src/algorithm_mode/serve.py L38-39 and L145-160:
    one worker and one concurrent transform per CPU."""
    status, headers, body = call(default_runtime, None, path="/execution-parameters", method="GET")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == {"MaxConcurrentTransforms": os.cpu_count(), "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 6}
    assert default_runtime.ready_info["workers"] == os.cpu_count()


def test_bodies_up_to_max_content_length_are_served(runtime_for, binary):
    """test/unit/algorithm_mode/test_serve.py L31-37 and src/algorithm_mode/serve.py L35 and L114: the limit
    is MAX_CONTENT_LENGTH, whatever its size. The trailing spaces are stripped before parsing (serve_utils.py
    L124), so this 21 MiB body is one row."""
    runtime = runtime_for(binary, MAX_CONTENT_LENGTH=str(22 * 2**20))
    assert json.loads(call(runtime, None, path="/execution-parameters", method="GET")[2])["MaxPayloadInMB"] == 22
    status, _, body = call(runtime, b"1,1" + b" " * (21 * 2**20))
    assert status == 200 and len(lines_of(body)) == 1, body[:200]


def test_dotfiles_in_the_model_are_ignored(tmp_path, runtime_for, binary):
    """test/unit/algorithm_mode/test_serve_utils.py L350-358."""
    import tarfile

    from tests.unit.local.runtime.conftest import Model, pack

    with tarfile.open(binary.tar) as tar:
        model = tar.extractfile("xgboost-model").read()
    tar_path = pack(tmp_path / "dotfiles.tar.gz", {"xgboost-model": model, ".DS_STORE": b"junk", ".xgboost-model": b"x"})
    runtime = runtime_for(Model(tar_path, binary.booster, binary.rows))
    status, _, body = call(runtime, csv_rows(binary.rows[:1]))
    assert status == 200 and float(lines_of(body)[0]) == pytest.approx(float(binary.predict(binary.rows[:1])[0]))


def test_json_input_only_when_asked_for(runtime_for, binary):
    """The container refuses application/json (src/data_utils.py L121-122); SME_LENIENT_INPUT=1 serves it and
    the runtime's log says the real container would not."""
    runtime = runtime_for(binary, SME_LENIENT_INPUT="1")
    status, headers, body = call(runtime, json.dumps({"instances": binary.rows[:2].tolist()}),
                                 content_type="application/json", accept="application/json")
    assert status == 200, body
    got = [p["score"] for p in json.loads(body)["predictions"]]
    np.testing.assert_allclose(got, binary.predict(binary.rows[:2]), rtol=1e-6)
    assert "answers 415 for Content-Type application/json" in runtime.log_path.read_text()
