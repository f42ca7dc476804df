"""Text generation as the Hugging Face TGI container answers SageMaker's ``POST /invocations``.

The contract (text-generation-inference ``router/src/server.rs`` ``compat_generate`` and
``generate_stream``, ``router/src/lib.rs``, ``router/src/validation.rs``):

- request ``{"inputs": str, "parameters": {...}, "stream": bool}``; ``stream`` picks the reply;
- ``stream: false``: ``[{"generated_text": ...}]`` (with ``"details": {finish_reason, generated_tokens,
  seed, prefill, tokens}`` when ``parameters.details``); the prompt leads the text unless
  ``return_full_text`` is false (TGI's default for a text-generation model on this route);
- ``stream: true``: ``text/event-stream``, one event ``data:{"index", "token": {"id", "text", "logprob",
  "special"}, "generated_text": null, "details": null}`` per token, the last one carrying
  ``generated_text`` and, when asked, ``details`` {finish_reason, generated_tokens, seed, input_length};
- a bad parameter is 422 ``{"error": "Input validation error: ...", "error_type": "validation"}``; more
  than MAX_CONCURRENT_REQUESTS in flight is 429 ``overloaded``. When streaming, TGI has already answered
  200 when it validates, so those errors come as one event ``data:{"error", "error_type"}``;
- a body that is not JSON is 400, JSON of the wrong shape 422, a Content-Type other than JSON 415, in
  the words of the axum server TGI runs on (plain text).

Settings from the container's environment, as TGI's launcher reads them: MAX_INPUT_TOKENS (or
MAX_INPUT_LENGTH, 1024), MAX_TOTAL_TOKENS (2048), MAX_CONCURRENT_REQUESTS (128), MAX_STOP_SEQUENCES (4);
sme's own: SME_LLM_STEP_MS (see textgen_batch) and SME_TOKEN_LOG (see ``TokenLog``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from typing import Any, Iterator

from sme.local.runtime.codecs import RequestError
from sme.local.runtime.textgen_batch import FINISHED, DecodeLoop, Overloaded, Sequence
from sme.local.runtime.textgen_model import WordModel
from sme.local.runtime.textgen_request import Request, ValidationError, parse_request

EVENT_STREAM = "text/event-stream"


class JsonRequestError(RequestError):
    """A 4xx whose body is TGI's JSON error document."""

    content_type = "application/json"

    def __init__(self, status: int, error: str, error_type: str):
        super().__init__(status, _json({"error": error, "error_type": error_type}).decode())


class TokenLog:
    """``SME_TOKEN_LOG=/path``: one JSON line per request, {request_id, received_at, sent_at: [...],
    tokens, stream, finish_reason}, times in seconds since the epoch (time.time()), sent_at taken as each
    token's event is handed to the server to write. Off unless the variable is set."""

    def __init__(self, path: str | None):
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        if self._file is not None:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            with self._lock:
                self._file.write(line)


class TextGenerationModel:
    """A loaded text-generation runtime; ``invoke_request`` is what ``server.make_app`` calls."""

    def __init__(self, env: dict[str, str] | os._Environ):
        self.model = WordModel.train()
        self.max_input = _int(env, "MAX_INPUT_TOKENS", _int(env, "MAX_INPUT_LENGTH", 1024))
        self.max_total = _int(env, "MAX_TOTAL_TOKENS", 2048)
        self.max_stop = _int(env, "MAX_STOP_SEQUENCES", 4)
        self.max_concurrent = _int(env, "MAX_CONCURRENT_REQUESTS", 128)
        step_ms = float(env.get("SME_LLM_STEP_MS") or 12.0)
        self.loop = DecodeLoop(self.model, step_ms / 1000.0, self.max_concurrent)
        self.log = TokenLog(env.get("SME_TOKEN_LOG"))
        self._ids = itertools.count(1)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[Any, str]:
        return self.invoke_request(body, content_type, "")

    def invoke_request(self, body: bytes, content_type: str | None, request_id: str) -> tuple[Any, str]:
        """(JSON bytes, or an iterator of event bytes for a stream; content type). Raises RequestError."""
        received = time.time()
        request_id = request_id or f"r{next(self._ids)}"
        request = parse_request(body, content_type)  # 400/415/422 in axum's words
        try:
            sequence = self._start(request)
        except (ValidationError, Overloaded) as e:
            error_type = "overloaded" if isinstance(e, Overloaded) else "validation"
            message = str(e) if isinstance(e, Overloaded) else f"Input validation error: {e}"
            if request.stream:
                return iter([b"data:" + _json({"error": message, "error_type": error_type}) + b"\n\n"]), EVENT_STREAM
            raise JsonRequestError(429 if isinstance(e, Overloaded) else 422, message, error_type) from None
        if request.stream:
            return self._events(request, sequence, request_id, received), EVENT_STREAM
        return self._whole(request, sequence, request_id, received), "application/json"

    def _start(self, request: Request) -> Sequence:
        prompt = self.model.encode(request.inputs)
        limits = request.check(len(prompt), self.max_input, self.max_total, self.max_stop)
        seed = request.seed if request.seed is not None else random.getrandbits(63)  # TGI: a random one
        sequence = Sequence(prompt, limits, request.sampling, tuple(request.stop), seed,
                            want_prefill=request.decoder_input_details)
        return self.loop.submit(sequence)

    def _events(self, request: Request, sequence: Sequence, request_id: str, received: float) -> Iterator[bytes]:
        sent: list[float] = []
        try:
            for index, choice in enumerate(_tokens(sequence), start=1):
                last = bool(sequence.finish_reason) and index == len(sequence.tokens)
                event = {"index": index, "token": _token(choice), "generated_text": None, "details": None}
                if last and sequence.finish_reason == "error":
                    event = {"error": "Request failed during generation: the decode loop failed",
                             "error_type": "generation"}
                elif last:
                    event["generated_text"] = self._generated_text(request, sequence)
                    if request.details:
                        event["details"] = {"finish_reason": sequence.finish_reason,
                                            "generated_tokens": len(sequence.tokens), "seed": _seed(sequence),
                                            "input_length": len(sequence.prompt)}
                data = b"data:" + _json(event) + b"\n\n"
                sent.append(time.time())
                yield data
        finally:
            if not sequence.finish_reason:
                sequence.cancelled = True  # the client went away: free its place in the batch
            self.log.write({"request_id": request_id, "received_at": received, "sent_at": sent,
                            "tokens": len(sent), "stream": True, "finish_reason": sequence.finish_reason})

    def _whole(self, request: Request, sequence: Sequence, request_id: str, received: float) -> bytes:
        tokens = list(_tokens(sequence))
        if sequence.finish_reason == "error":
            raise JsonRequestError(424, "Request failed during generation: the decode loop failed", "generation")
        answer: dict[str, Any] = {"generated_text": self._generated_text(request, sequence)}
        if request.details:
            answer["details"] = {"finish_reason": sequence.finish_reason, "generated_tokens": len(tokens),
                                 "seed": _seed(sequence), "prefill": sequence.prefill,
                                 "tokens": [_token(c) for c in tokens]}
        body = _json([answer])
        self.log.write({"request_id": request_id, "received_at": received, "sent_at": [time.time()],
                        "tokens": len(tokens), "stream": False, "finish_reason": sequence.finish_reason})
        return body

    @staticmethod
    def _generated_text(request: Request, sequence: Sequence) -> str:
        return (request.inputs if request.return_full_text else "") + sequence.text


def _tokens(sequence: Sequence) -> Iterator:
    while True:
        choice = sequence.out.get()
        if choice is FINISHED:
            return
        yield choice


def _token(choice: Any) -> dict:
    return {"id": choice.id, "text": choice.text, "logprob": round(choice.logprob, 7), "special": choice.special}


def _seed(sequence: Sequence) -> int | None:
    return sequence.seed if sequence.sampling.do_sample else None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int(env: Any, name: str, default: int) -> int:
    value = env.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"sme-runtime: {name}={value!r} is not a whole number") from None

