"""Reading a streamed answer as it arrives: token events, time to first token, inter-token latency.

Two framings reach a load process:

- ``sse``: server-sent events (TGI's ``/generate_stream``, OpenAI-style servers). A token event is one event
  with data other than ``[DONE]``. A line that is a bare JSON object outside SSE syntax is an event too
  (LMI's ``jsonlines`` streaming answers one JSON object per line).
- ``eventstream``: SageMaker's InvokeEndpointWithResponseStream answer (``application/vnd.amazon.eventstream``).
  Its frames are decoded by botocore's own parser; the ``PayloadPart`` bytes are the model server's stream,
  read as above (a frame may split an event or hold several). An exception frame (``ModelStreamError``,
  ``InternalStreamFailure``) ends the request as failed, named by its exception type.

When the last event carries the number of generated tokens (TGI ``details.generated_tokens``, OpenAI-style
``usage.completion_tokens``) that number is the request's output tokens; otherwise its token events are
counted. Pure: no gevent, no sockets (the load process hands chunks and their arrival times in).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

DONE = b"[DONE]"
HEAD_BYTES = 500


class StreamFailure(Exception):
    """A stream that broke after its 200: counted as failed under ``stream:<code>``."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.stream_code = code


class SseEvents:
    """Incremental server-sent-events parser: ``feed(bytes)`` returns the data (bytes) of each event completed.

    It works on bytes and splits with C-level calls: a load process reads tens of thousands of token events
    a second, and each one's cost here is paid beside the requests it times (bench/stream)."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._buf:
            chunk = self._buf + chunk
        lines = chunk.split(b"\n")
        self._buf = lines.pop()  # the unfinished line, if any
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line[:5] == b"data:":  # the common line first
                data.append(line[6:] if line[5:6] == b" " else line[5:])
                if data[-1][-1:] == b"\r":
                    data[-1] = data[-1][:-1]
            elif not line or line == b"\r":  # a blank line dispatches the event
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line[:1] == b"{" and not data:  # a JSON line (jsonlines streaming): an event of its own
                events.append(line.rstrip(b"\r"))
            # comments (":..."), event:, id: and retry: carry no token
        return events

    @property
    def idle(self) -> bool:
        """Between events: nothing buffered, no data lines waiting for their blank line."""
        return not self._buf and not self._data

    def close(self) -> list[bytes]:
        """The end of the stream: a last event without its blank line still counts."""
        events = self.feed(b"\n") if self._buf else []
        if self._data:
            events.append(b"\n".join(self._data))
            self._data.clear()
        return events


class EventStreamFrames:
    """SageMaker's event-stream frames, decoded by botocore's parser: ``feed`` returns the payload bytes of
    the ``PayloadPart`` events completed, and raises StreamFailure on an exception frame."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> bytes:
        from botocore.eventstream import ParserError

        self._buffer.add_data(chunk)
        parts = []
        try:
            for message in self._buffer:
                headers = message.headers
                kind = headers.get(":message-type")
                if kind == "event":
                    if headers.get(":event-type") == "PayloadPart":
                        parts.append(message.payload)
                    continue
                code = headers.get(":exception-type") or headers.get(":error-code") or "UnknownStreamError"
                raise StreamFailure(code, _message(message.payload, headers))
        except ParserError as exc:
            raise StreamFailure("InvalidEventStream", str(exc)) from None
        return b"".join(parts)


def _message(payload: bytes, headers: dict[str, Any]) -> str:
    try:
        doc = json.loads(payload or b"{}")
    except ValueError:
        doc = {}
    return str(doc.get("Message") or doc.get("message") or headers.get(":error-message") or "")[:200]


class StreamReading:
    """One request's stream: feed chunks with their arrival times (perf_counter seconds); read the result."""

    def __init__(self, framing: str, started: float):
        self.started = started
        self.first: float | None = None
        self.last: float | None = None
        self.gaps_ms: list[float] = []
        self.events = 0
        self.reported: int | None = None  # the server's own count of generated tokens, when it says
        self.head = b""  # the stream's first bytes, for the run's sample answer
        self._sse = SseEvents()
        self._frames = EventStreamFrames() if framing == "eventstream" else None

    def feed(self, chunk: bytes, at: float) -> None:
        if self._frames is not None:
            chunk = self._frames.feed(chunk)
            if not chunk:
                return
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[:HEAD_BYTES - len(self.head)]
        sse = self._sse
        idle = not sse._buf and not sse._data  # (SseEvents.idle, inlined: this runs once per read)
        if chunk[:6] == b"data:{" and chunk[-2:] == b"\n\n" and idle:
            n = chunk.count(b"\n\n")
            if chunk.count(b"\n") == 2 * n and chunk.count(b"data:{") == n and b'_tokens"' not in chunk \
                    and b'{"error"' not in chunk and b"\r" not in chunk:
                # the common case: whole token events (TGI's `data:{"token": ...}`), one line each, and no parser
                # state to carry: counted here, none sliced out (a load process reads tens of thousands a second)
                self._tokens_at(n, at)
                return
        if chunk[:5] == b"data:" and chunk[-2:] == b"\n\n" and chunk.count(b"\n") == 2 and idle:
            # one whole single-line event of another shape
            self._events((chunk[6:-2] if chunk[5:6] == b" " else chunk[5:-2],), at)
            return
        events = sse.feed(chunk)
        if events:
            self._events(events, at)

    def close(self, at: float) -> None:
        self._events(self._sse.close(), at)

    def _tokens_at(self, n: int, at: float) -> None:
        """``n`` token events that arrived together at ``at``."""
        self.events += n
        if self.first is None:
            self.first = self.last = at
            n -= 1
        if n:
            self.gaps_ms.append((at - self.last) * 1000.0)  # type: ignore[operator]
            self.gaps_ms.extend([0.0] * (n - 1))
        self.last = at

    def _events(self, events: Iterable[bytes], at: float) -> None:
        for data in events:
            head = data[:8]
            if head[:1] == b"[" and data.strip() == DONE:
                continue
            if head == b'{"error"':  # TGI's error event: the generation failed mid-stream
                raise StreamFailure(_error_type(data), _error_text(data))
            if b'_tokens"' in data:  # "generated_tokens" (TGI details) or "completion_tokens" (usage)
                self.reported = _token_count(data) or self.reported
            self.events += 1
            if self.first is None:
                self.first = at
            else:
                self.gaps_ms.append((at - self.last) * 1000.0)  # type: ignore[operator]
            self.last = at

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first is None else (self.first - self.started) * 1000.0

    @property
    def tokens(self) -> int:
        return self.reported if self.reported is not None else self.events


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _token_count(data: bytes) -> int | None:
    """The count a final event reports: TGI's ``details.generated_tokens`` or OpenAI's
    ``usage.completion_tokens``."""
    doc = _json(data)
    if not isinstance(doc, dict):
        return None
    details = doc.get("details")
    if isinstance(details, dict) and isinstance(details.get("generated_tokens"), int):
        return details["generated_tokens"]
    usage = doc.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return usage["completion_tokens"]
    return None


def _error_type(data: bytes) -> str:
    doc = _json(data)
    kind = doc.get("error_type") if isinstance(doc, dict) else None
    return f"{kind}" if isinstance(kind, str) and kind else "error"


def _error_text(data: bytes) -> str:
    doc = _json(data)
    return str(doc.get("error", ""))[:200] if isinstance(doc, dict) else ""
