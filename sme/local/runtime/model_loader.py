"""Load an unpacked artifact into a model that answers invocations, for either serving convention.

A loaded model has one method, `invoke(body, content_type, accept) -> (body, content_type)`. It raises
`RequestError` for a bad request (4xx) and anything else for a model failure (5xx). Each gunicorn worker
loads its own copy (XGBoost's predict is not fork-safe once its thread pool exists), with one thread
per booster as the SageMaker container does.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import pickle
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from sme.local.runtime import codecs, xgboost_contract
from sme.local.runtime.artifact import INFERENCE_SCRIPT, TEXT_GENERATION, Artifact, ModelLoadError
from sme.local.runtime.xgboost_contract import Contract

log = logging.getLogger("sme.runtime")
HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


def load_model(artifact: Artifact) -> Any:
    """Raises ModelLoadError with the reason an endpoint would show as Failed."""
    if artifact.convention == INFERENCE_SCRIPT:
        return ScriptModel.load(artifact)
    if artifact.convention == TEXT_GENERATION:
        from sme.local.runtime.textgen import TextGenerationModel

        return TextGenerationModel(os.environ)
    contract = Contract.from_environ(os.environ)
    # SAGEMAKER_INFERENCE_ENSEMBLE=false: the container loads one file, the first its directory lists.
    files = artifact.model_files if contract.ensemble else artifact.model_files[:1]
    return XGBoostModel(load_boosters(files), contract)


def load_boosters(paths: tuple[Path, ...]) -> list:
    import xgboost as xgb

    boosters = []
    for path in paths:
        data = path.read_bytes()
        booster = xgb.Booster()
        try:
            if data[:1] == b"\x80":  # the container also serves a pickled Booster (serve_utils.get_loaded_booster)
                booster = unpickle_booster(data)
            else:
                # From bytes, xgboost tells JSON from UBJ by content, as 1.7 does for the container's
                # extension-less `xgboost-model`.
                booster.load_model(bytearray(data))
        except (xgb.core.XGBoostError, pickle.UnpicklingError) as e:
            raise ModelLoadError(_unloadable(path.name, data, str(e), xgb.__version__)) from None
        booster.set_param("nthread", 1)
        boosters.append(booster)
    return boosters


# What a pickled xgboost Booster is made of; any other global in a pickle is refused before it is built, so
# a model file cannot run code (a pickle can name any callable).
PICKLE_GLOBALS = {("xgboost.core", "Booster"), ("builtins", "bytearray")}


class _BoosterUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}; a pickled model may hold only an xgboost "
                                         "Booster")
        return super().find_class(module, name)


def unpickle_booster(data: bytes) -> Any:
    import xgboost as xgb

    booster = _BoosterUnpickler(io.BytesIO(data)).load()
    if not isinstance(booster, xgb.Booster):
        raise pickle.UnpicklingError(f"it holds a {type(booster).__name__}, not an xgboost Booster")
    return booster


def _unloadable(name: str, data: bytes, error: str, version: str) -> str:
    fix = "load it with xgboost 1.x or 2.x and re-save it with Booster.save_model in JSON format"
    if data[:1] == b"\x80":
        return f"{name} is a pickle local mode does not load ({error.strip().splitlines()[0] if error else 'unreadable'}); {fix}"
    if data[:4] == b"binf":
        # What SageMaker's XGBoost training jobs up to 1.7-1 write: xgboost 3 dropped the format.
        return f"{name} is in XGBoost's old binary format, which xgboost {version} cannot read; {fix}"
    first_line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return f"{name} is not an XGBoost model that xgboost {version} can load (JSON or UBJ): {first_line}"


class XGBoostModel:
    """The built-in XGBoost algorithm's serving behaviour (see xgboost_contract for its source)."""

    def __init__(self, boosters: list, contract: Contract | None = None):
        import json

        self.boosters = boosters
        self.contract = contract or Contract()
        self.n_features = boosters[0].num_features()
        learner = json.loads(boosters[0].save_config())["learner"]
        self.objective = learner["objective"]["name"]
        self.num_class = learner["learner_model_param"].get("num_class", "")

    def invoke(self, body: bytes, content_type: str | None, accept_header: str | None) -> tuple[bytes, str]:
        """serve.invocations, step by step: 204, 415, 400, 406, then the answer."""
        contract = self.contract
        if not body:
            raise codecs.RequestError(204, "")
        rows = xgboost_contract.decode(body, xgboost_contract.request_kind(content_type, contract), contract)
        predictions = self.predict(xgboost_contract.fit_width(rows, self.n_features))
        accept = xgboost_contract.parse_accept(accept_header, contract)
        if contract.selected_keys is not None:
            answer = xgboost_contract.encode_selected(predictions, accept, contract, self.objective, self.num_class)
        else:
            answer = xgboost_contract.encode(predictions, accept, contract)
        return answer, xgboost_contract.response_type(accept)

    def predict(self, rows):
        # inplace_predict skips building a DMatrix: the bulk of the cost for a one-row request.
        try:
            if len(self.boosters) == 1:
                return self.boosters[0].inplace_predict(rows, validate_features=False)
            every = [b.inplace_predict(rows, validate_features=False) for b in self.boosters]
        except ValueError as e:  # xgboost's own refusals of the data (XGBoostError is a ValueError)
            raise codecs.RequestError(400, f"Unable to evaluate payload provided: {str(e).splitlines()[0]}") from None
        import numpy as np

        if self.objective in ("multi:softmax", "binary:hinge"):  # class predictions: the container votes
            from scipy import stats

            return stats.mode(np.asarray(every), axis=0, keepdims=False).mode
        return np.mean(every, axis=0)


class ScriptModel:
    """The inference toolkit's handler convention: the script's functions, defaults for the rest."""

    def __init__(self, model: Any, handlers: dict[str, Callable]):
        self.model = model
        self.transform_fn = handlers.get("transform_fn")
        self.input_fn = handlers.get("input_fn") or self._default_input_fn
        self.predict_fn = handlers.get("predict_fn") or _default_predict_fn
        self.output_fn = handlers.get("output_fn") or _default_output_fn

    @classmethod
    def load(cls, artifact: Artifact) -> "ScriptModel":
        module = _import_script(artifact.script)
        handlers = {name: getattr(module, name) for name in HANDLER_NAMES if callable(getattr(module, name, None))}
        model_fn = handlers.get("model_fn") or _default_model_fn(artifact)
        try:
            model = model_fn(str(artifact.model_dir))
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"model_fn in {artifact.script.name} raised {type(e).__name__}: {e}") from e
        return cls(model, handlers)

    def invoke(self, body: bytes, content_type: str | None, accept_header: str | None) -> tuple[bytes, str]:
        """As sagemaker-inference-toolkit's Transformer.transform (transformer.py, v1.10): the handlers see the
        request's Content-Type and Accept headers as sent (Accept: none or */* means
        SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else JSON), a str body for exactly application/json and
        text/csv, bytes otherwise; the response's type is the Accept unless the handler returns one."""
        default = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or codecs.JSON
        accept = default if not accept_header or accept_header == "*/*" else accept_header
        data = body.decode("utf-8") if content_type in (codecs.JSON, codecs.CSV) else body
        if self.transform_fn is not None:
            result = self.transform_fn(self.model, data, content_type, accept)
        else:
            result = self.output_fn(self.predict_fn(self.input_fn(data, content_type), self.model), accept)
        if isinstance(result, tuple) and len(result) == 2:  # (body, content type), as the toolkit allows
            result, accept = result
        if isinstance(result, str):
            result = result.encode()
        elif not isinstance(result, (bytes, bytearray, memoryview)):
            raise TypeError(f"the response body must be bytes or str, not {type(result).__name__}")
        return bytes(result), accept

    def _default_input_fn(self, body: bytes | str, content_type: str | None):
        body = body.encode("utf-8") if isinstance(body, str) else body
        content_type = codecs.media_type(content_type)
        if content_type == codecs.NPY:
            import io

            import numpy as np

            return np.load(io.BytesIO(body), allow_pickle=False)
        if not _is_booster(self.model) and content_type == codecs.JSON:
            import json

            import numpy as np

            try:
                return np.asarray(json.loads(body))  # the toolkit's default: any JSON array, not only numbers
            except ValueError as e:
                raise codecs.RequestError(400, f"request body is not JSON: {e}") from None
        n_features = self.model.num_features() if _is_booster(self.model) else None
        return codecs.decode_rows(body, content_type, n_features)


def _import_script(script: Path) -> ModuleType:
    code_dir = str(script.parent)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)  # the script may import its sibling modules
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # SyntaxError and ImportError included: the user's script, the user's reason
        raise ModelLoadError(f"{script.name} failed to import: {type(e).__name__}: {e}") from e
    return module


def _default_model_fn(artifact: Artifact) -> Callable[[str], Any]:
    boosters = [p for p in artifact.model_files if p.name == "xgboost-model"] or list(artifact.model_files)

    def model_fn(model_dir: str):
        if not boosters:
            raise ModelLoadError(f"{artifact.script.name} defines no model_fn and the model data has no xgboost-model to load")
        return load_boosters((boosters[0],))[0]

    return model_fn


def _is_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster" and hasattr(model, "inplace_predict")


def _default_predict_fn(data: Any, model: Any) -> Any:
    if _is_booster(model):
        return model.inplace_predict(data, validate_features=False)
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise TypeError(f"the model from model_fn ({type(model).__name__}) has no predict method; define predict_fn")


def _default_output_fn(prediction: Any, accept: str) -> bytes:
    return codecs.encode_value(prediction, codecs.media_type(accept))
