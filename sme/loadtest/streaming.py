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
counted. Pure: no gevent, no sockets (the load process hands chunks and their arrival times in, as whole
microseconds of ``perf_counter``: ``perf_counter_ns() // 1000``).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from itertools import accumulate, chain, islice, repeat
from operator import floordiv, methodcaller, sub
from typing import Any, Iterable, Iterator

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


_NEWLINES = methodcaller("count", b"\n")
_ENDS_EVENT = methodcaller("endswith", b"\n\n")


def _plain_events(blob: bytes) -> tuple[int, int, int]:
    """How ``blob`` starts with whole single-line ``data:`` events, none of them ``[DONE]``, an error or the
    last with a token count: such events are plain tokens and need no parsing. Returns the length of that
    start (0 if none), its number of events, and where the last ``_tokens"`` is (-1 if nowhere).

    Each check is a C-level scan of the bytes (a load process pays them for every token), and the last token
    count is looked for from the end, where it is (``StreamReading.take`` reads any earlier one if needed)."""
    end = blob.rfind(b"\n\n") + 2  # after the last blank line
    if end < 2 or not blob.startswith(b"data:"):
        return 0, 0, -1
    newlines = blob.count(b"\n", 0, end)
    # with every newline in a blank line followed by "data:" (or ending it all), each line is a data event
    if newlines & 1 or blob.count(b"\n\ndata:", 0, end) != (newlines >> 1) - 1:
        return 0, 0, -1
    count_at = blob.rfind(b'_tokens"', 0, end)
    stops = [i for i in (count_at, blob.find(b'{"error"', 0, end),
                         blob.find(b"[DONE]", 0, end) if b"[" in blob else -1) if i >= 0]  # ("[": one memchr)
    if not stops:
        return end, newlines >> 1, count_at
    last = blob.rfind(b"\n\n", 0, min(stops))  # the blank line before the event that holds the first
    plain = last + 2 if last >= 0 else 0
    return plain, blob.count(b"\n", 0, plain) >> 1, count_at


class StreamReading:
    """One request's stream: hand it the pieces read, with their arrival times (whole microseconds of
    perf_counter; the request's start in its seconds); read the result.

    A load process reads tens of thousands of token events a second, and each one's cost here is paid beside
    the requests it times (bench/stream), so the load process hands pieces over in batches (``take``, up to
    ``BATCH`` reads at a time) and a batch is read with a few C-level scans of its bytes, not event by event:
    the longest run of whole single-line ``data:`` events at its start, none of them ``[DONE]``, an error or
    a token count, is counted at once, each event at the arrival time of the piece that completed it (the
    2k-th newline from there). The parser reads the rest, piece by piece, each at its own arrival time. The
    numbers are the same either way (tests/unit/loadtest/test_streaming.py). So an error event fails the
    request when its batch is read: at the end of the stream, or ``BATCH`` reads later at most."""

    BATCH = 32  # reads handed over at once at most (a read is 4 KiB at most)

    def __init__(self, framing: str, started: float):
        self.started_us = started * 1e6
        self.times: list[int] = []  # each token event's arrival time (us), in order
        self.reported: int | None = None  # the server's own count of generated tokens, when it says
        self.head = b""  # the stream's first bytes, for the run's sample answer
        self._sse = SseEvents()
        self._frames = EventStreamFrames() if framing == "eventstream" else None
        self._counts = 0  # token counts taken from the parsed events

    def feed(self, chunk: bytes, at: int) -> None:
        """One piece."""
        self.take([chunk], [at])

    def take(self, pieces: list[bytes], at: list[int]) -> None:
        """Pieces read in this order, and when each arrived."""
        if self._frames is not None:  # SageMaker's event stream: the model server's bytes are in its frames
            decoded, times = [], []
            for piece, t in zip(pieces, at):
                payload = self._frames.feed(piece)
                if payload:
                    decoded.append(payload)
                    times.append(t)
            pieces, at = decoded, times
        if not pieces:
            return
        if len(self.head) < HEAD_BYTES:
            self.head += b"".join(pieces)[:HEAD_BYTES - len(self.head)]
        k, n = 0, len(pieces)
        while k < n and not self._sse.idle:  # the parser holds an event's start: it reads on until that ends
            self._parse(pieces[k], at[k])
            k += 1
        if k == n:
            return
        if k:
            pieces, at, k = pieces[k:], at[k:], 0
        blob = b"".join(pieces) if len(pieces) > 1 else pieces[0]
        plain, events, count_at = _plain_events(blob)
        counted = self._counts
        if plain:
            if events == len(pieces) and plain == len(blob) and all(map(_ENDS_EVENT, pieces)):
                self.times.extend(at)  # one event a piece (the usual case)
            else:  # the events each piece completed: every second newline from the start ends one
                done = list(map(floordiv, accumulate(map(_NEWLINES, pieces)), repeat(2)))
                self.times.extend(islice(chain.from_iterable(map(repeat, at, map(sub, done, [0, *done[:-1]]))),
                                         events))
            if plain == len(blob):
                return
            ends = list(accumulate(map(len, pieces)))
            k = bisect_right(ends, plain)  # the piece the rest starts in, and where in it
            cut = plain - (ends[k - 1] if k else 0)
            if cut:
                self._parse(pieces[k][cut:], at[k])
                k += 1
        for j in range(k, len(pieces)):
            self._parse(pieces[j], at[j])
        if plain and count_at >= 0 and self._counts == counted:
            # the last token count said nothing: an earlier one in the plain events holds (taken in order)
            self._counts_before(blob, plain)

    def _counts_before(self, blob: bytes, plain: int) -> None:
        pos = blob.find(b'_tokens"', 0, plain)
        while pos >= 0:
            prev = blob.rfind(b"\n\n", 0, pos)
            start = prev + 2 if prev >= 0 else 0
            stop = blob.find(b"\n\n", pos)
            data = blob[start + 5:stop]  # (after "data:")
            count = _token_count(data[1:] if data[:1] == b" " else data)
            if count:
                self.reported = count
            pos = blob.find(b'_tokens"', stop, plain)

    def close(self, at: int) -> None:
        self._events(self._sse.close(), at)

    def _parse(self, chunk: bytes, at: int) -> None:
        sse = self._sse
        events = sse.feed(chunk)
        if events:
            self._events(events, at)

    def _events(self, events: Iterable[bytes], at: int) -> None:
        for data in events:
            head = data[:8]
            if head[:1] == b"[" and data.strip() == DONE:
                continue
            if head == b'{"error"':  # TGI's error event: the generation failed mid-stream
                raise StreamFailure(_error_type(data), _error_text(data))
            if b'_tokens"' in data:  # "generated_tokens" (TGI details) or "completion_tokens" (usage)
                count = _token_count(data)
                if count:
                    self.reported = count
                    self._counts += 1
            self.times.append(at)

    @property
    def events(self) -> int:
        return len(self.times)

    @property
    def ttft_ms(self) -> float | None:
        return (self.times[0] - self.started_us) / 1000.0 if self.times else None

    def gaps_us(self) -> Iterator[int]:
        """The gap before each token event after the first (0 for events read together), in C."""
        return map(sub, self.times[1:], self.times[:-1])

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
