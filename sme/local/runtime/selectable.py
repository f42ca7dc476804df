"""Selectable inference: `SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probabilities,...` makes the XGBoost
container answer chosen facts about each prediction instead of the bare score.

Ported from aws/sagemaker-xgboost-container, `algorithm_mode/serve_utils.py` (v1.7-1-1, lines 59-89 and
257-508; unchanged in 3.x): which keys each objective offers, how each is computed, and how the
selection is encoded in JSON, JSON Lines, CSV and recordio-protobuf. A key the objective does not offer
is answered as NaN; an objective with no selectable output is a 500.
"""

from __future__ import annotations

import json
import math

import numpy as np

from sme.local.runtime.codecs import RequestError

PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES = "predicted_label", "labels", "probability", "probabilities"
RAW_SCORE, RAW_SCORES, PREDICTED_SCORE = "raw_score", "raw_scores", "predicted_score"
KEY_ORDER = (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES, PREDICTED_SCORE)
_CLASSIFIER_KEYS = (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES)
_SCORE_ONLY_KEYS = (PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES)
VALID_KEYS = {
    "reg:squarederror": (PREDICTED_SCORE,), "reg:logistic": (PREDICTED_SCORE,), "reg:gamma": (PREDICTED_SCORE,),
    "reg:absoluteerror": (PREDICTED_SCORE,), "reg:tweedie": (PREDICTED_SCORE,),
    "binary:logistic": _CLASSIFIER_KEYS, "binary:logitraw": _SCORE_ONLY_KEYS, "binary:hinge": _SCORE_ONLY_KEYS,
    "multi:softmax": _SCORE_ONLY_KEYS, "multi:softprob": _CLASSIFIER_KEYS,
}
NAN = math.nan


def selected_keys(setting: str) -> list[str]:
    """The keys as the container reads SAGEMAKER_INFERENCE_OUTPUT: spaces dropped, lower case, in order."""
    return setting.replace(" ", "").lower().split(",")


def select(predictions: np.ndarray, keys: list[str], objective: str, num_class: str = "") -> list[dict]:
    """One dict per prediction: the offered keys in the container's fixed order, then the others as NaN."""
    if objective not in VALID_KEYS:
        raise RequestError(500, f"Objective `{objective}` unsupported for selectable inference predictions.")
    offered = [key for key in KEY_ORDER if key in keys and key in VALID_KEYS[objective]]
    others = [key for key in dict.fromkeys(keys) if key not in VALID_KEYS[objective]]
    labels = _labels(objective, num_class)
    chosen = []
    for raw in predictions:
        entry = {key: _value(key, objective, raw, labels) for key in offered}
        entry.update((key, NAN) for key in others)
        chosen.append(entry)
    return chosen


def _labels(objective: str, num_class: str):
    if "binary:" in objective:
        return [0, 1]
    if "multi:" in objective and num_class:
        return list(range(int(num_class)))
    return NAN


def _value(key: str, objective: str, raw, labels):
    if key == LABELS:
        return labels
    if key == PREDICTED_SCORE:
        return raw.item()
    if objective == "multi:softprob":  # raw is the row of class probabilities
        return {PREDICTED_LABEL: lambda: np.argmax(raw).item(), PROBABILITY: lambda: max(raw).item(),
                RAW_SCORE: lambda: max(raw).item(), PROBABILITIES: raw.tolist, RAW_SCORES: raw.tolist}[key]()
    score = raw.item()
    if key == PREDICTED_LABEL:
        if objective == "binary:logistic":
            return int(raw > 0.5)
        return int(raw > 0) if objective == "binary:logitraw" else score
    if key in (PROBABILITY, RAW_SCORE):
        return score
    # PROBABILITIES (binary:logistic only) and RAW_SCORES: the container's [1 - score, score], for every
    # objective that offers them, even where score is a class index (multi:softmax) or a margin.
    return [1.0 - score, score]


def encode(chosen: list[dict], keys: list[str], accept: str, batch: bool) -> bytes:
    """The container's encode_selected_predictions (serve_utils.py lines 485-508)."""
    if accept == "application/json":
        return json.dumps({"predictions": chosen}).encode()
    if accept == "application/jsonlines":
        return "".join(json.dumps(entry) + "\n" for entry in chosen).encode()
    if accept == "application/x-recordio-protobuf":
        from sme.local.runtime.recordio import write_label_records

        return write_label_records([{k: v if isinstance(v, list) else [v] for k, v in e.items()} for e in chosen])
    if accept == "text/csv":
        lines = "\n".join(",".join(_csv_cell(entry[key]) for key in keys) for entry in chosen)
        return (lines + "\n" if batch else lines).encode()
    raise RequestError(500, f"Cannot encode selected predictions into accept type '{accept}'.")


def _csv_cell(value) -> str:
    return f'"{value}"' if isinstance(value, list) else str(value)
