"""Request bodies to rows of features and values to response bodies for handler scripts
(`code/inference.py`), and the `application/json` rows that SME_LENIENT_INPUT lets built-in XGBoost
models read. The built-in XGBoost container's own formats are in `xgboost_contract`.

Inputs: `text/csv` (one row per line, features only, an empty field is missing), `text/libsvm`
(`[label] index:value ...`, 0-based columns, absent columns are missing) and `application/json`
(`{"instances": [[...], ...]}`, `{"instances": [{"features": [...]}]}`, a list of rows or one flat row).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

CSV = "text/csv"
LIBSVM = "text/libsvm"
JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
CONTENT_TYPE_ALIASES = {"text/x-libsvm": LIBSVM, "application/x-libsvm": LIBSVM, "application/jsonl": JSONLINES,
                        "application/x-jsonlines": JSONLINES}
SCRIPT_INPUTS = (CSV, LIBSVM, JSON)
NAN = math.nan


class RequestError(Exception):
    """The request is wrong; `status` is the 4xx code and the message the reason sent back."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def media_type(header: str | None, default: str = CSV) -> str:
    """The bare, lower-case media type of a Content-Type header; `default` when there is none."""
    if not header:
        return default
    value = header.split(";", 1)[0].strip().lower()
    return CONTENT_TYPE_ALIASES.get(value, value) or default


def default_accept(content_type: str, fallback: str = CSV) -> str:
    """The container answers in SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else in the request's own type."""
    configured = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
    if configured:
        return media_type(configured)
    return JSON if content_type == JSON else fallback


def decode_rows(body: bytes, content_type: str, n_features: int | None) -> np.ndarray:
    """A 2-D float32 array of feature rows; 400/415 with the reason when the body does not fit."""
    if content_type == CSV:
        rows = parse_csv(_text(body))
    elif content_type == LIBSVM:
        rows = parse_libsvm(_text(body), n_features)
    elif content_type == JSON:
        rows = parse_json(body)
    else:
        raise RequestError(415, f"Content-Type {content_type!r} is not supported; use one of {', '.join(SCRIPT_INPUTS)}")
    if n_features is not None and rows.shape[1] != n_features:
        raise RequestError(400, f"rows have {rows.shape[1]} values but the model expects {n_features} features")
    return rows


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise RequestError(400, f"request body is not UTF-8 text: {e}") from None
    if not text:
        raise RequestError(400, "request body is empty")
    return text


def parse_csv(text: str) -> np.ndarray:
    lines = text.splitlines()
    try:
        if len(lines) == 1:  # the common single-row request: skip the per-row bookkeeping
            return np.array([[float(v) if v.strip() else NAN for v in lines[0].split(",")]], dtype=np.float32)
        rows = [[float(v) if v.strip() else NAN for v in line.split(",")] for line in lines if line.strip()]
    except ValueError as e:
        raise RequestError(400, f"CSV body has a value that is not a number ({e}); send features only, no header") from None
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise RequestError(400, f"CSV rows have different numbers of values: {sorted(widths)}")
    return np.array(rows, dtype=np.float32)


def parse_libsvm(text: str, n_features: int | None) -> np.ndarray:
    entries: list[list[tuple[int, float]]] = []
    try:
        for line in text.splitlines():
            tokens = line.split()
            if not tokens:
                continue
            if ":" not in tokens[0]:
                tokens = tokens[1:]  # the label, which prediction ignores
            entries.append([(int(k), float(v)) for k, v in (token.split(":", 1) for token in tokens)])
    except ValueError as e:
        raise RequestError(400, f"libsvm body is not 'index:value' pairs ({e})") from None
    widest = max((index for row in entries for index, _ in row), default=-1) + 1
    width = n_features if n_features is not None else widest
    if widest > width or min((index for row in entries for index, _ in row), default=0) < 0:
        raise RequestError(400, f"libsvm feature indexes must be 0..{width - 1} (0-based) for this model")
    rows = np.full((len(entries), width), np.nan, dtype=np.float32)
    for r, row in enumerate(entries):
        for index, value in row:
            rows[r, index] = value
    return rows


def parse_json(body: bytes) -> np.ndarray:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise RequestError(400, f"request body is not JSON: {e}") from None
    if isinstance(doc, dict):
        if "instances" in doc:
            doc = doc["instances"]
        elif "features" in doc:
            doc = [doc["features"]]
        else:
            raise RequestError(400, 'JSON body needs "instances": [[...], ...] or a list of rows')
    if not isinstance(doc, list) or not doc:
        raise RequestError(400, "JSON body has no rows")
    if all(isinstance(v, (int, float)) or v is None for v in doc):
        doc = [doc]  # one flat row
    doc = [row["features"] if isinstance(row, dict) and "features" in row else row for row in doc]
    try:
        rows = np.array(doc, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise RequestError(400, f"JSON rows must be lists of numbers of equal length ({e})") from None
    if rows.ndim != 2:
        raise RequestError(400, "JSON rows must be lists of numbers of equal length")
    return rows


def encode_value(value, accept: str) -> bytes:
    """The inference toolkit's default encoding of whatever predict_fn returned."""
    if accept == NPY:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value))
        return buffer.getvalue()
    plain = value.tolist() if isinstance(value, np.ndarray) else value
    if accept == JSON:
        return json.dumps(plain).encode()
    if accept == CSV:
        rows = plain if isinstance(plain, list) else [plain]
        return "\n".join(",".join(map(str, r)) if isinstance(r, list) else str(r) for r in rows).encode()
    if accept == JSONLINES:
        rows = plain if isinstance(plain, list) else [plain]
        return "\n".join(json.dumps(r) for r in rows).encode()
    raise RequestError(406, f"Accept {accept!r} is not supported by the default output_fn; use {JSON}, {CSV}, {JSONLINES} or {NPY}")
