"""Reading a TGI request body and checking its parameters, in TGI's order and words.

Shape errors are axum's (the web framework TGI runs on): a Content-Type that is not JSON is 415
"Expected request with `Content-Type: application/json`", a body that is not JSON 400 "Failed to parse
the request body as JSON: ...", JSON of the wrong shape 422 "Failed to deserialize the JSON body into
the target type: ...". Parameter errors are ``ValidationError``s with ``router/src/validation.rs``'s
messages, checked in its order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sme.local.runtime.codecs import RequestError
from sme.local.runtime.textgen_model import Sampling

DEFAULT_GENERATION_LENGTH = 1024  # TGI's cap on one request's tokens when max_new_tokens is not given


class ValidationError(Exception):
    """A parameter TGI refuses; the message is validation.rs's."""


@dataclass
class Request:
    inputs: str
    stream: bool = False
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    do_sample: bool = False
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool = True
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    best_of: int | None = None

    @property
    def sampling(self) -> Sampling:
        sample = self.do_sample or any(v is not None for v in (self.temperature, self.top_k, self.top_p, self.typical_p))
        return Sampling(do_sample=sample, temperature=self.temperature or 1.0, top_k=self.top_k or 0,
                        top_p=self.top_p or 1.0)

    def check(self, input_length: int, max_input: int, max_total: int, max_stop: int) -> int:
        """The number of tokens to generate at most; raises ValidationError as TGI's validate() does."""
        if self.stream and (self.best_of or 1) != 1:
            raise ValidationError("`best_of` != 1 is not supported when streaming tokens")
        if self.stream and self.decoder_input_details:
            raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
        if (self.best_of or 1) != 1:
            raise ValidationError("`best_of` != 1 is not allowed for this endpoint")
        for name, value, ok in (("temperature", self.temperature, lambda v: v > 0),
                                ("repetition_penalty", self.repetition_penalty, lambda v: v > 0)):
            if value is not None and not ok(value):
                raise ValidationError(f"`{name}` must be strictly positive")
        for name, value in (("top_p", self.top_p), ("typical_p", self.typical_p)):
            if value is not None and not 0.0 < value < 1.0:
                raise ValidationError(f"`{name}` must be > 0.0 and < 1.0")
        if self.top_k is not None and self.top_k <= 0:
            raise ValidationError("`top_k` must be strictly positive")
        if self.max_new_tokens == 0:
            raise ValidationError("`max_new_tokens` must be strictly positive")
        if len(self.stop) > max_stop:
            raise ValidationError(f"`stop` supports up to {max_stop} stop sequences. Given: {len(self.stop)}")
        if not self.inputs:
            raise ValidationError("`inputs` cannot be empty")
        wanted = self.max_new_tokens if self.max_new_tokens is not None else max(0, max_total - input_length)
        if input_length + min(wanted, DEFAULT_GENERATION_LENGTH) > max_total:
            raise ValidationError(f"`inputs` tokens + `max_new_tokens` must be <= {max_total}. Given: "
                                  f"{input_length} `inputs` tokens and {min(wanted, DEFAULT_GENERATION_LENGTH)} "
                                  "`max_new_tokens`")
        if input_length > max_input:
            raise ValidationError(f"`inputs` must have less than {max_input} tokens. Given: {input_length}")
        return wanted


FIELDS = {"max_new_tokens": int, "temperature": float, "top_k": int, "top_p": float, "typical_p": float,
          "repetition_penalty": float, "do_sample": bool, "details": bool, "decoder_input_details": bool,
          "return_full_text": bool, "seed": int, "stop": list, "best_of": int}


def parse_request(body: bytes, content_type: str | None) -> Request:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise RequestError(415, "Expected request with `Content-Type: application/json`")
    try:
        document = json.loads(body)
    except ValueError as e:
        raise RequestError(400, f"Failed to parse the request body as JSON: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), str):
        raise _shape_error("missing field `inputs` (a string)" if isinstance(document, dict)
                           else "expected a JSON object")
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _shape_error("`parameters` must be an object")
    values: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        value = parameters.get(name)
        if value is None:
            continue
        if not _is(value, kind) or (kind is int and value < 0 and name != "top_k"):
            raise _shape_error(f"`parameters.{name}`: invalid value {json.dumps(value)}, expected {_kind_name(kind)}")
        values[name] = float(value) if kind is float else value
    if "stop" in values and not all(isinstance(s, str) for s in values["stop"]):
        raise _shape_error("`parameters.stop`: expected a sequence of strings")
    stream = document.get("stream", False)
    if not isinstance(stream, bool):
        raise _shape_error(f"`stream`: invalid value {json.dumps(stream)}, expected a boolean")
    return Request(inputs=document["inputs"], stream=stream, **values)


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: type) -> str:
    return {int: "a non-negative whole number", float: "a number", bool: "a boolean", list: "a list"}[kind]


def _shape_error(reason: str) -> RequestError:
    return RequestError(422, f"Failed to deserialize the JSON body into the target type: {reason}")
