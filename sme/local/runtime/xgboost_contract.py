"""What the SageMaker XGBoost container's /invocations accepts and answers, for built-in models.

Ported from aws/sagemaker-xgboost-container at v1.7-1-1 (what `xgboost:1.7-1` names):
`algorithm_mode/serve.py` (invocations, lines 207-249; _parse_accept, 163-179),
`algorithm_mode/serve_utils.py` (parse_content_data, 118-152; _get_sparse_matrix_from_libsvm, 94-115;
predict, 197-237), `data_utils.py` (get_content_type, 86-122) and `encoder.py` (csv_to_dmatrix, 35-56).
The 3.x images differ in one place: libsvm indexes are read as 1-based when none of them is 0.

In order: an empty body is 204; a Content-Type the container cannot read, or a body that does not parse
as it, is 415 (no Content-Type means libsvm); a prediction xgboost refuses is 400; an Accept outside
JSON, JSON Lines, recordio-protobuf and CSV is 406. CSV answers one prediction per line
(`a,b,c` per row for multi-value predictions), each line ending in "\\n".

One thing the container refuses is served on request: `SME_LENIENT_INPUT=1` reads `application/json`
bodies (`{"instances": [[...]]}` and similar); each worker logs, at the first such request, that the
real container answers 415.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from sme.local.runtime import selectable
from sme.local.runtime.codecs import RequestError, parse_json

log = logging.getLogger("sme.runtime")
CSV, LIBSVM, RECORDIO, JSON_INPUT = "csv", "libsvm", "recordio-protobuf", "json"
SUPPORTED_ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf", "text/csv")
_CONTENT_TYPES = {"csv": CSV, "text/csv": CSV, "libsvm": LIBSVM, "text/libsvm": LIBSVM, "text/x-libsvm": LIBSVM,
                  "recordio-protobuf": RECORDIO, "application/x-recordio-protobuf": RECORDIO}
_PARQUET = ("parquet", "application/x-parquet")  # valid for training; serving answers 415
LENIENT_NOTE = "the SageMaker XGBoost container answers 415 for Content-Type application/json"
_warned: list[bool] = []  # once per worker: a load test would otherwise write one line per request


@dataclass(frozen=True)
class Contract:
    """The container's behaviour as its environment sets it."""

    default_accept: str = "text/csv"  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    batch: bool = False  # SAGEMAKER_BATCH: batch transform's one-prediction-per-line answers
    selected_keys: tuple[str, ...] | None = None  # SAGEMAKER_INFERENCE_OUTPUT, when set
    ensemble: bool = True  # SAGEMAKER_INFERENCE_ENSEMBLE: average (or vote) every model file
    libsvm_one_based: bool = False  # 3.x images: shift 1-based libsvm indexes down
    lenient_json: bool = False  # SME_LENIENT_INPUT: also read application/json (the container does not)

    @classmethod
    def from_environ(cls, env) -> "Contract":
        output = env.get("SAGEMAKER_INFERENCE_OUTPUT")  # set at all, even empty, means selectable
        return cls(default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "text/csv",
                   batch=bool(env.get("SAGEMAKER_BATCH")),
                   selected_keys=None if output is None else tuple(selectable.selected_keys(output)),
                   ensemble=env.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") == "true",
                   libsvm_one_based=image_major_version(env.get("SME_CONTAINER_IMAGE", "")) >= 3,
                   lenient_json=env.get("SME_LENIENT_INPUT", "") not in ("", "0", "false"))


def image_major_version(image: str) -> int:
    """3 for `...sagemaker-xgboost:3.0-5`; 1 (the 1.7-1 reference) when the tag says nothing."""
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    match = re.match(r"(\d+)\.", tag)
    return int(match.group(1)) if match else 1


def parse_header(line: str) -> tuple[str, dict[str, str]]:
    """cgi.parse_header, which the container uses (gone from Python 3.13): 'a/b; k=v' -> ('a/b', {'k': 'v'})."""
    parts = _split_params(";" + line)
    key = next(parts)
    params = {}
    for part in parts:
        if "=" in part:
            name, _, value = part.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
            params[name.strip().lower()] = value
    return key, params


def _split_params(s: str):
    while s[:1] == ";":
        s = s[1:]
        end = s.find(";")
        while end > 0 and (s.count('"', 0, end) - s.count('\\"', 0, end)) % 2:
            end = s.find(";", end + 1)
        end = len(s) if end < 0 else end
        yield s[:end].strip()
        s = s[end:]


def request_kind(content_type: str | None, contract: Contract) -> str:
    """data_utils.get_content_type and serve_utils.parse_content_data: 415 for what cannot be read."""
    if content_type is None:
        return LIBSVM
    media, params = parse_header(content_type.lower())
    if media in ("csv", "text/csv") and params.get("label_size", "1") != "1":
        raise RequestError(415, f"{content_type} is not an accepted csv ContentType. "
                                "Optional parameter label_size must be equal to 1")
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if media == "application/json" and contract.lenient_json:
        return JSON_INPUT
    if media in _PARQUET:
        raise RequestError(415, f"Content-type {content_type} is not supported.")
    raise RequestError(415, f"{content_type} is not an accepted ContentType: csv, libsvm, parquet, "
                            "recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
                            "application/x-recordio-protobuf.")


def decode(body: bytes, kind: str, contract: Contract):
    """Rows to predict: a 2-D float array, or a CSR matrix for libsvm and sparse recordio. 415 if unreadable."""
    try:
        if kind == CSV:
            return decode_csv(body)
        if kind == LIBSVM:
            return decode_libsvm(body, contract.libsvm_one_based)
        if kind == RECORDIO:
            from sme.local.runtime.recordio import read_feature_rows

            return read_feature_rows(body)
    except Exception as e:  # noqa: BLE001 - the container answers 415 for any failure to read the body
        label = {CSV: "csv", LIBSVM: "libsvm", RECORDIO: "recordio-protobuf"}[kind]
        raise RequestError(415, f"Loading {label} data failed with Exception, please ensure data is in {label} "
                                f"format:\n {type(e)}\n {e}") from None
    if not _warned:
        _warned.append(True)
        log.warning("serving application/json requests because SME_LENIENT_INPUT is set; %s", LENIENT_NOTE)
    try:
        return parse_json(body)
    except RequestError as e:
        raise RequestError(415, e.reason) from None


def decode_csv(body: bytes) -> np.ndarray:
    """encoder.csv_to_dmatrix: the delimiter is sniffed from the first line (a letter or digit means ','),
    an empty field is a missing value, and every line is a row (so a blank inner line is one empty field)."""
    text = body.strip().decode("utf-8")
    delimiter = sniff_delimiter(text.split("\n")[0][:512])
    cells = [["nan" if v == "" else v for v in line.split(delimiter)] for line in text.split("\n")]
    return np.array(cells).astype(float)  # rows of different widths are a ValueError here, as there


def sniff_delimiter(sample: str) -> str:
    """What the container's csv.Sniffer gives, ',' for a letter or digit. The Sniffer costs ~150 us, more than
    the prediction, so the common case skips it: with no quote character it only weighs how regularly
    each character occurs, every character of a one-line sample is equally regular, and ',' comes first
    in its preferred list, so a quote-free sample of two or more distinct characters with a ',' gets ','."""
    if "," in sample and '"' not in sample and "'" not in sample and len(set(sample)) > 1:
        return ","
    delimiter = csv.Sniffer().sniff(sample).delimiter
    return "," if delimiter.isalnum() else delimiter


def decode_libsvm(body: bytes, one_based: bool):
    """serve_utils._get_sparse_matrix_from_libsvm: tokens split on single spaces, those without ':' (the
    label) skipped, row count = last row with a feature + 1, duplicate indexes summed, 0-based columns."""
    from scipy.sparse import csr_matrix

    rows, cols, values = [], [], []
    for row, line in enumerate(body.strip().decode("utf-8").split("\n")):
        for item in line.split(" "):
            if ":" in item:
                parts = item.split(":")
                rows.append(row)
                cols.append(parts[0])
                values.append(parts[1])
    col = np.array(cols).astype(int)
    if one_based and len(col) and col.min() >= 1:
        col = col - 1
    return csr_matrix((np.array(values).astype(float), (np.array(rows), col)))


def fit_width(rows, n_features: int):
    """Fewer columns than the model has are missing values (xgboost pads them); more are the 400 that
    xgboost's 'Number of columns does not match' check gives the container."""
    width = rows.shape[1]
    if width > n_features:
        raise RequestError(400, f"Unable to evaluate payload provided: the request has {width} columns but the "
                                f"model has {n_features} features (Number of columns does not match number of "
                                "features in booster)")
    if width == n_features:
        return rows
    if hasattr(rows, "tocsr"):
        rows = rows.tocsr(copy=True)
        rows.resize((rows.shape[0], n_features))
        return rows
    return np.hstack([rows, np.full((rows.shape[0], n_features - width), np.nan)])


def parse_accept(header: str | None, contract: Contract) -> str:
    """serve._parse_accept: one media type (parameters dropped); none or */* means the configured default."""
    accept, _ = parse_header(header or "")
    if not accept or accept == "*/*":
        return contract.default_accept
    if accept.lower() not in SUPPORTED_ACCEPTS:
        raise RequestError(406, f"Accept type {accept} is not supported. Please use supported accept types: "
                                f"{list(SUPPORTED_ACCEPTS)}.")
    return accept.lower()


def encode(predictions: np.ndarray, accept: str, contract: Contract) -> bytes:
    """serve.invocations' answer without selectable inference (serve.py lines 240-249)."""
    values = predictions.tolist()
    if contract.batch:  # whatever the Accept: one str() per line, a list for multi-value predictions
        return ("\n".join(map(str, values)) + "\n").encode()
    if accept == "application/json":
        return json.dumps({"predictions": [{"score": v} for v in values]}).encode()
    if accept == "text/csv":  # sagemaker-containers' array_to_csv: csv.writer rows, "\n" after each
        rows = values if predictions.ndim > 1 else [[v] for v in values]
        return "".join(",".join(map(str, row)) + "\n" for row in rows).encode()
    if accept == "application/x-npy":  # reachable through SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT only
        buffer = io.BytesIO()
        np.save(buffer, np.array(values))
        return buffer.getvalue()
    raise RequestError(500, f"Content type {accept} is not supported by this framework (the XGBoost container "
                            "answers 500 here): JSON Lines and recordio-protobuf answers need "
                            "SAGEMAKER_INFERENCE_OUTPUT (selectable inference)")


def encode_selected(predictions: np.ndarray, accept: str, contract: Contract, objective: str,
                    num_class: str) -> bytes:
    keys = list(contract.selected_keys or ())
    chosen = selectable.select(predictions, keys, objective, num_class)
    return selectable.encode(chosen, keys, accept, contract.batch)


def response_type(accept: str) -> str:
    """Flask's mimetype: text types get '; charset=utf-8'."""
    return f"{accept}; charset=utf-8" if accept.startswith("text/") else accept
