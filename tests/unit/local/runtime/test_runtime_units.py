"""The runtime's pure parts, in process: unpacking model data safely, deciding the convention, codecs,
and the demo model's compatibility with the 1.7-1 container."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sme.local.runtime import codecs, xgboost_contract
from sme.local.runtime.artifact import INFERENCE_SCRIPT, XGBOOST, ModelLoadError, inspect, unpack
from sme.local.runtime.xgboost_contract import Contract


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" * info.size
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize("member", [_file("../up"), _file("/abs"), _file("code/../../up"),
                                    _link("xgboost-model", "/etc/passwd"), _link("m", "../../x")])
def test_unpack_refuses_members_that_leave_the_model_dir(tmp_path, member):
    model_dir = tmp_path / "model"
    with pytest.raises(ModelLoadError, match="outside the model directory"):
        unpack(_tar(tmp_path / "m.tar.gz", [member]), model_dir)
    assert not (tmp_path / "up").exists()


def test_unpack_reports_a_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        unpack(tmp_path / "nope.tar.gz", tmp_path / "model")


def test_inspect_prefers_the_handler_script_and_reads_requirements(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("")
    (tmp_path / "code" / "requirements.txt").write_text("torch\n\n# note\nnumpy<2  # pinned\n")
    (tmp_path / "xgboost-model").write_text("{}")
    artifact = inspect(tmp_path, env={})
    assert artifact.convention == INFERENCE_SCRIPT
    assert artifact.requirements == ("torch", "numpy<2")


def test_inspect_honours_program_and_submit_directory(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "serve.py").write_text("")
    env = {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/src"}
    assert inspect(tmp_path, env=env).script == tmp_path / "src" / "serve.py"


def test_inspect_builtin_xgboost_and_empty(tmp_path):
    (tmp_path / "xgboost-model").write_text("{}")
    (tmp_path / ".hidden").write_text("")
    artifact = inspect(tmp_path, env={})
    assert artifact.convention == XGBOOST
    assert [p.name for p in artifact.model_files] == ["xgboost-model"]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="neither an xgboost-model member nor code/inference.py"):
        inspect(empty, env={})


def test_csv_empty_fields_are_missing_values():
    rows = codecs.decode_rows(b"1,,3\n4,5,6\n", codecs.CSV, 3)
    assert rows.shape == (2, 3)
    assert np.isnan(rows[0, 1]) and rows[1, 2] == 6


def test_csv_rows_of_different_widths_are_refused():
    with pytest.raises(codecs.RequestError, match="different numbers of values") as e:
        codecs.decode_rows(b"1,2\n1,2,3", codecs.CSV, None)
    assert e.value.status == 400


def test_json_shapes():
    one = codecs.decode_rows(b'{"instances": [{"features": [1, 2]}]}', codecs.JSON, 2)
    assert one.tolist() == [[1, 2]]
    assert codecs.decode_rows(b"[1, null]", codecs.JSON, 2).shape == (1, 2)
    with pytest.raises(codecs.RequestError, match="equal length"):
        codecs.decode_rows(b"[[1, 2], [3]]", codecs.JSON, None)


def test_media_type_for_handler_scripts():
    assert codecs.media_type("text/x-libsvm; charset=utf-8") == codecs.LIBSVM
    assert codecs.media_type(None, default=codecs.JSON) == codecs.JSON


@pytest.mark.parametrize("header", ["text/csv", "text/csv; label_size=1", "text/csv;label_size = 1",
                                    "text/csv; label_size=1=1", "text/csv; label_size=1; label_size=2",
                                    "label_size=1; text/csv", 'text/csv; a="x;y"; b=2', 'a/b; c="q\\"r"', "", ";"])
def test_header_parsing_matches_cgi(header):
    """The container reads Content-Type and Accept with cgi.parse_header (gone from Python 3.13)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import cgi

    assert xgboost_contract.parse_header(header) == cgi.parse_header(header)


def test_predictions_round_trip_exactly():
    predictions = np.array([0.1234567, 0.9], dtype=np.float32)
    body = xgboost_contract.encode(predictions, "text/csv", Contract())
    assert np.array([float(v) for v in body.splitlines()], dtype=np.float32).tolist() == predictions.tolist()
    scores = json.loads(xgboost_contract.encode(predictions, "application/json", Contract()))["predictions"]
    assert [s["score"] for s in scores] == predictions.tolist()


def test_demo_model_is_what_the_container_expects(tmp_path):
    """One member named xgboost-model, JSON format, base_score 0.5 (the value xgboost 1.7 falls back to
    when it cannot parse 3.x's "[5E-1]"), a payload of feature rows only."""
    from sme.local.demo_model import build_demo_model

    demo = build_demo_model(tmp_path)
    with tarfile.open(demo.model_tar) as tar:
        assert tar.getnames() == ["xgboost-model"]
        model = json.loads(tar.extractfile("xgboost-model").read())
    assert float(model["learner"]["learner_model_param"]["base_score"].strip("[]")) == 0.5
    assert model["learner"]["learner_model_param"]["num_feature"] == "30"
    lines = demo.payload_csv.read_text().splitlines()
    assert len(lines) == demo.n_rows == 569
    assert all(len(line.split(",")) == 30 for line in lines)


def test_server_settings_come_from_sagemaker_environment(monkeypatch):
    from sme.local.runtime.__main__ import parse_args

    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9123")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "7")
    args = parse_args(["--model-data", "m.tar.gz"])
    assert (args.port, args.workers, args.timeout) == (9123, 3, 7)
    assert parse_args(["--model-data", "m.tar.gz", "--port", "0", "--workers", "1"]).workers == 1


def test_multi_value_predictions_encode_one_row_per_line():
    predictions = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    assert xgboost_contract.encode(predictions, "text/csv", Contract()) == b"0.25,0.75\n0.5,0.5\n"
    assert json.loads(xgboost_contract.encode(predictions, "application/json", Contract())) == {
        "predictions": [{"score": [0.25, 0.75]}, {"score": [0.5, 0.5]}]}


def test_several_model_files_are_averaged_like_the_container(tmp_path):
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    from sme.local.runtime.model_loader import load_model

    features, labels = load_breast_cancer(return_X_y=True)
    data = xgb.DMatrix(features, label=labels)
    boosters = [xgb.train({"objective": "binary:logistic", "max_depth": depth, "base_score": 0.5}, data, 3)
                for depth in (1, 3)]
    for i, booster in enumerate(boosters):
        (tmp_path / f"model-{i}").write_bytes(bytes(booster.save_raw("json")))
    model = load_model(inspect(tmp_path, env={}))
    body, content_type = model.invoke("\n".join(",".join(map(repr, r)) for r in features[:5].tolist()).encode(),
                                      "text/csv", None)
    expected = np.mean([b.predict(xgb.DMatrix(features[:5])) for b in boosters], axis=0)
    np.testing.assert_allclose([float(v) for v in body.splitlines()], expected, rtol=1e-6)
    assert content_type == "text/csv; charset=utf-8"


@pytest.mark.parametrize("content, reason", [
    (b"binf\x00\x00\x00?\x1e\x00\x00\x00", "old binary format"),  # SageMaker 1.7-1 training output
    (b"\x80\x04\x95", "is a pickle"),
    (b'{"learner": 1}', "is not an XGBoost model"),
])
def test_unloadable_model_files_say_why(tmp_path, content, reason):
    from sme.local.runtime.model_loader import load_model

    (tmp_path / "xgboost-model").write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as failure:
        load_model(inspect(tmp_path, env={}))
    assert failure.value.args[0].startswith("xgboost-model ")


def _script_model(tmp_path: Path, script: str):
    from sme.local.runtime.model_loader import load_model

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(script)
    return load_model(inspect(tmp_path, env={}))


def test_transform_fn_replaces_the_other_handlers(tmp_path):
    model = _script_model(tmp_path, (
        "def model_fn(model_dir):\n    return 2\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return str(model * int(body)), 'text/plain'\n"
    ))
    assert model.invoke(b"21", "text/plain", "*/*") == (b"42", "text/plain")


def _call(app, body: bytes, content_type: str = "application/json"):
    seen = {}
    environ = {"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": content_type, "wsgi.input": io.BytesIO(body)}
    out = b"".join(app(environ, lambda status, headers: seen.update(status=status, headers=dict(headers))))
    return int(seen["status"].split()[0]), seen["headers"], out


def test_handler_errors_map_to_status_codes(tmp_path):
    from sme.local.runtime.server import make_app

    model = _script_model(tmp_path, (
        "class Unprocessable(Exception):\n    status_code = 422\n"
        "def model_fn(model_dir):\n    return None\n"
        "def input_fn(body, content_type):\n"
        "    if body == '422':\n        raise Unprocessable('cannot use this')\n"
        "    if body == '500':\n        raise KeyError('feature_7')\n"
        "    return body\n"
        "def predict_fn(data, model):\n    return data\n"
        "def output_fn(prediction, accept):\n    return prediction\n"
    ))
    app = make_app(model, max_body=100)
    assert _call(app, b"ok")[::2] == (200, b"ok")
    status, headers, body = _call(app, b"422")
    assert (status, body) == (422, b"model error: Unprocessable: cannot use this")
    status, headers, body = _call(app, b"500")
    assert status == 500 and b"KeyError" in body and b"feature_7" in body
    assert int(headers["X-Model-Latency-Us"]) >= 0
    assert _call(app, b"x" * 101)[0] == 413


def test_handlers_see_what_the_inference_toolkit_passes(tmp_path, monkeypatch):
    """sagemaker-inference-toolkit transformer.py (Transformer.transform): headers as sent, a str body for
    exactly application/json and text/csv, Accept */* or none -> SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT or JSON."""
    model = _script_model(tmp_path, (
        "def model_fn(model_dir):\n    return None\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return repr((type(body).__name__, content_type, accept))\n"
    ))
    assert model.invoke(b"1", "text/csv", None) == (b"('str', 'text/csv', 'application/json')", codecs.JSON)
    assert model.invoke(b"1", "text/csv; charset=utf-8", "text/csv, */*")[0] == (
        b"('bytes', 'text/csv; charset=utf-8', 'text/csv, */*')")
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    assert model.invoke(b"{}", None, "*/*") == (b"('bytes', None, 'text/csv')", "text/csv")


def test_default_handlers_for_a_model_that_is_not_a_booster(tmp_path):
    model = _script_model(tmp_path, (
        "class Upper:\n    def predict(self, words):\n        return [w.upper() for w in words]\n"
        "def model_fn(model_dir):\n    return Upper()\n"
    ))
    assert model.invoke(b'["a", "b"]', codecs.JSON, None) == (b'["A", "B"]', codecs.JSON)
    with pytest.raises(codecs.RequestError, match="not JSON"):
        model.invoke(b"[nope", codecs.JSON, None)


def test_batch_transform_answers_one_str_per_line_whatever_the_accept():
    batch = Contract(batch=True)
    assert xgboost_contract.encode(np.array([0.25, 0.5], dtype=np.float32), "text/csv", batch) == b"0.25\n0.5\n"
    multi = np.array([[0.25, 0.75]], dtype=np.float32)
    assert xgboost_contract.encode(multi, "application/json", batch) == b"[0.25, 0.75]\n"


def test_contract_reads_the_container_environment():
    contract = Contract.from_environ({"SAGEMAKER_INFERENCE_OUTPUT": "Predicted_Label, probabilities",
                                      "SAGEMAKER_INFERENCE_ENSEMBLE": "True", "SAGEMAKER_BATCH": "1",
                                      "SME_CONTAINER_IMAGE": "1.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"})
    assert contract.selected_keys == ("predicted_label", "probabilities")
    assert not contract.ensemble, "only the exact string 'true' keeps the ensemble, as in the container"
    assert contract.batch and contract.libsvm_one_based
    assert Contract.from_environ({}) == Contract()
    assert xgboost_contract.image_major_version("localhost:5000/xgb") == 1


def test_csv_delimiter_shortcut_agrees_with_the_sniffer():
    """xgboost_contract.sniff_delimiter skips csv.Sniffer for quote-free lines with a comma; over random lines of
    the characters that matter it must give what the Sniffer gives (the container's encoder.py L51-52)."""
    import csv
    import random

    def sniffer(sample):
        try:
            delimiter = csv.Sniffer().sniff(sample).delimiter
        except csv.Error:
            return None
        return "," if delimiter.isalnum() else delimiter

    def ours(sample):
        try:
            return xgboost_contract.sniff_delimiter(sample)
        except csv.Error:
            return None

    chars = "0123456789.,,,;\t :-eE\"'abn"
    generator = random.Random(18)
    samples = ["".join(generator.choice(chars) for _ in range(generator.randint(1, 40))) for _ in range(3000)]
    samples += ["0.5,1.25", "1", ",", "1,2,3,2019-1-1 12:12:12", "a,b", "1;2,3", "1\t2,3", "nan,inf"]
    shortcut = [s for s in samples if "," in s and '"' not in s and "'" not in s and len(set(s)) > 1]
    assert len(shortcut) > 500, "the generated lines should exercise the shortcut"
    assert [ours(s) for s in samples] == [sniffer(s) for s in samples]
