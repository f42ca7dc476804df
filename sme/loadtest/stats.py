"""Latency statistics as HDR bucket counts: recorded per second in each load process, merged as they arrive.

A load process keeps a ``Recorder``: per second of completion time, the count per HDR histogram bucket
(microseconds, 1 us to 1 h, 3 significant digits: {lowest equivalent value: count}) plus counts of
requests, failures, errors and dropped open-model arrivals. ``drain()`` hands them over and starts afresh;
workers send them in Locust's worker reports as flat [value, count, ...] lists.

The master's (or local runner's) ``Tally`` adds every batch, as it arrives, to the whole run and to the
stage its second belongs to, and keeps only the last few seconds apart (the live line and the rows of
``timeseries.csv`` read them; ``settle`` hands a second out as a row once its batches are in). Nothing
grows with the run's length: a 24-hour run holds one count table per stage and a few seconds' tables.
Percentiles are read from the counts exactly as an HDR histogram of the same values reads them (tested
against hdrh), never averaged; merging is adding counts, so any number of processes and machines add up
exactly.
"""

from __future__ import annotations

from collections import _count_elements  # type: ignore[attr-defined]  # Counter's counting loop, in C
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sme.loadtest.hdr import (HIGHEST_US, LOWEST_US, MASK, OFFSET, Counts, count_into, dense_add, dense_pairs,
                              buckets, flat, histogram, new_histogram, pairs_of, percentiles_us, shift_of)
from sme.loadtest.limits import CpuTally

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
RETAIN_S = 10  # seconds a settled second's counts are kept, so a batch that comes late still lands exactly


def gap_counts(answers: list[Iterable[int]]) -> Counts:
    """Each answer's inter-token gaps (whole us), counted by HDR bucket: counted per microsecond by Counter's C
    loop, then each distinct value put in its bucket."""
    values: dict[int, int] = {}
    for gaps in answers:
        _count_elements(values, gaps)
    return buckets(values)


class Recorder:
    """Per-process recording; cheap enough to call for every request.

    A request costs a dict increment, not an HDR ``record_value`` (pure Python, ~2.5 us, which was ~2% of
    a load process's CPU): each second keeps {lowest equivalent value: count}, the same bucket the
    histogram itself would use (tested).
    """

    def __init__(self) -> None:
        # second -> [{lowest equivalent value (us): count}, requests, failures(, stream part)]
        self.seconds: dict[int, list] = {}
        self.errors: dict[str, int] = {}
        self.dropped: dict[int, int] = {}
        self.offset = 0.0  # this process's clock minus the master's (see clock_skew)
        # second -> [this process's cores, its machine's busy share(, its loop's lateness, longest wait for a
        # core: LoopProbe)] (limits.py)
        self.cpu: dict[int, list] = {}
        self.who: dict[str, Any] = {}  # this process: its label, role, host and the host's cores
        self.bytes = [0, 0]  # request bodies sent, response bodies received (serverless bills data processed)

    def record_cpu(self, second: int, mine: float, machine: float | None, late: float | None = None,
                   wait: float | None = None) -> None:
        entry = [round(mine, 4), None if machine is None else round(machine, 4)]
        if late is not None:
            entry += [round(late, 6), None if wait is None else round(wait, 6)]
        self.cpu[int(second - self.offset)] = entry

    def record(self, done_at: float, latency_ms: float, error: str | None) -> None:
        sec = int(done_at - self.offset)
        slot = self.seconds.get(sec)
        if slot is None:
            slot = self.seconds[sec] = [{}, 0, 0]
        us = int(latency_ms * 1000.0 + 0.5)
        if us < LOWEST_US:
            us = LOWEST_US
        elif us > HIGHEST_US:
            us = HIGHEST_US
        shift = (us | MASK).bit_length() - OFFSET
        key = us >> shift << shift
        counts = slot[0]
        counts[key] = counts.get(key, 0) + 1
        slot[1] += 1
        if error is not None:
            slot[2] += 1
            self.errors[error] = self.errors.get(error, 0) + 1

    def record_stream(self, done_at: float, ttft_ms: float | None, gaps_us: Iterable[int], tokens: int) -> None:
        """A streamed answer's tokens, in the second its request completed (``record`` counts the request):
        time to first token, each inter-token gap (whole microseconds), and its output tokens.

        A streamed answer has a gap per token, so its gaps are only kept here, as handed over (any iterable:
        ``StreamReading.gaps_us`` is a C iterator over its arrival times), and counted when drained, once a
        second, all together (``gap_counts``). Counting each answer's gaps here, in the middle of the load
        loop, was 3% of a load process's CPU (bench/stream)."""
        sec = int(done_at - self.offset)
        slot = self.seconds.get(sec)
        if slot is None:
            slot = self.seconds[sec] = [{}, 0, 0]
        if len(slot) == 3:
            slot.append([{}, [], 0, 0])
        part = slot[3]
        if ttft_ms is not None:
            count_into(part[0], ttft_ms)
            part[3] += 1
        part[1].append(gaps_us)
        part[2] += tokens

    def drop(self, due_at: float) -> None:
        sec = int(due_at - self.offset)
        self.dropped[sec] = self.dropped.get(sec, 0) + 1

    def drain(self, wire: bool = True) -> dict[str, Any]:
        """Everything recorded since the last drain. For a worker report (``wire``) the count tables are
        flat lists (msgpack and JSON keep them as they are); the local runner takes the dicts."""
        pack = flat if wire else (lambda c: c)
        out = {"seconds": {str(s): [pack(slot[0]), slot[1], slot[2],
                                    *([[pack(slot[3][0]), pack(gap_counts(slot[3][1])), slot[3][2], slot[3][3]]]
                                      if len(slot) > 3 else [])]
                           for s, slot in self.seconds.items()},
               "errors": self.errors, "dropped": {str(s): n for s, n in self.dropped.items()}}
        if self.cpu and self.who:
            out["cpu"] = {**self.who, "seconds": {str(s): v for s, v in self.cpu.items()}}
        if any(self.bytes):
            out["bytes"] = self.bytes
        self.seconds, self.errors, self.dropped, self.cpu, self.bytes = {}, {}, {}, {}, [0, 0]
        return out


@dataclass
class Window:
    """Requests, failures, dropped arrivals and the latency counts of some span: a second, a stage, the run.

    A second's counts are a dict (a few hundred buckets at most). A stage's or the whole run's live all
    run long and can fill thousands of buckets: ``lasting()`` keeps them in an hdrh histogram instead,
    a fixed ~190 kB however wide the latencies spread (a dict of 14,000 buckets takes ~1.4 MB).
    """

    requests: int = 0
    failures: int = 0
    dropped: int = 0
    counts: Counts = field(default_factory=dict)
    dense: Any = None  # the hdrh histogram that holds the counts instead of ``counts``
    stream: "StreamPart | None" = None  # streamed answers' tokens, once any arrived

    @classmethod
    def lasting(cls) -> "Window":
        return cls(dense=new_histogram())

    def add(self, counts: Counts | list[int], requests: int = 0, failures: int = 0, dropped: int = 0,
            stream: list[Any] | None = None) -> None:
        if stream is not None:
            if self.stream is None:
                self.stream = StreamPart.new(lasting=self.dense is not None)
            self.stream.add(stream)
        if self.dense is not None:
            dense_add(self.dense, pairs_of(counts))
        else:
            mine = self.counts
            for value, n in pairs_of(counts):
                mine[value] = mine.get(value, 0) + n
        self.requests += requests
        self.failures += failures
        self.dropped += dropped

    def merge(self, other: "Window", stream: bool = True) -> None:
        self.add(dict(other.pairs()), other.requests, other.failures, other.dropped,
                 other.stream.part() if stream and other.stream is not None else None)

    def pairs(self) -> list[tuple[int, int]]:
        """(lowest equivalent value, count) of every bucket with a count, by value."""
        if self.dense is not None:
            return dense_pairs(self.dense)
        return sorted(self.counts.items())

    def histogram(self) -> Any:
        return self.dense if self.dense is not None else histogram(self.counts)

    def percentiles_ms(self, *percentiles: float) -> list[float | None]:
        values = percentiles_us(self.pairs(), percentiles)
        return [values[p] / 1000.0 if p in values else None for p in percentiles]

    def latency_ms(self) -> dict[str, float | None]:
        """p50 ... p999, max and mean, as hdrh reads them from a histogram of the same values."""
        pairs = self.pairs()
        if not pairs:
            return {k: None for k in (*PERCENTILES, "max", "mean")}
        values = percentiles_us(pairs, PERCENTILES.values())
        out: dict[str, float | None] = {k: values[p] / 1000.0 for k, p in PERCENTILES.items()}
        top = pairs[-1][0]
        out["max"] = (top + (1 << shift_of(top)) - 1) / 1000.0
        # hdrh's mean: each bucket counted at its middle, summed as integers, divided once
        total = sum(n * (v + ((1 << shift_of(v)) >> 1)) for v, n in pairs)
        out["mean"] = round(total / sum(n for _, n in pairs) / 1000.0, 3)
        return out

    def to_json(self) -> list[Any]:
        out = [[x for pair in self.pairs() for x in pair], self.requests, self.failures, self.dropped]
        return out + [self.stream.part(wire=True)] if self.stream is not None else out

    @classmethod
    def from_json(cls, data: list[Any], lasting: bool = True) -> "Window":
        w = cls.lasting() if lasting else cls()
        w.add(data[0], data[1], data[2], data[3], data[4] if len(data) > 4 else None)
        return w


@dataclass
class StreamPart:
    """Streamed answers in a window: time-to-first-token and inter-token-gap counts (as a Window's latency
    counts), output tokens, and the requests that brought at least one token."""

    ttft: Window
    itl: Window
    tokens: int = 0
    with_tokens: int = 0

    @classmethod
    def new(cls, lasting: bool) -> "StreamPart":
        make = Window.lasting if lasting else Window
        return cls(make(), make())

    def add(self, part: list[Any]) -> None:
        """``part``: [ttft counts, inter-token counts, tokens, requests with tokens], as Recorder drains it."""
        ttft, itl, tokens, with_tokens = part
        self.ttft.add(ttft)
        self.itl.add(itl)
        self.tokens += tokens
        self.with_tokens += with_tokens

    def part(self, wire: bool = False) -> list[Any]:
        if wire:
            return [flat(dict(self.ttft.pairs())), flat(dict(self.itl.pairs())), self.tokens, self.with_tokens]
        return [dict(self.ttft.pairs()), dict(self.itl.pairs()), self.tokens, self.with_tokens]


class Tally:
    """The merge of every process's drained batches, in memory that does not grow with the run.

    ``stage_of(second)`` says which stage a second's requests count in (each second in exactly one stage,
    so the stages add up to the whole), and ``steady_of(second, stage)`` whether that second measures the
    stage steady (see Schedule.steady_seconds). The few seconds that do not (a stage's first and last) are
    also kept apart, as small count tables, so that ``steady(stage)`` is the exact histogram of the steady
    seconds alone (the stage's counts minus theirs) at no cost in memory per stage. The last seconds are kept apart until ``settle`` hands them out
    as rows, and for RETAIN_S more: a batch for a second already handed out (a worker's report that came
    late) still counts exactly in the whole and its stage, and lands in ``corrected`` so that its row can
    be written again at the end (whole; or, for a batch later than RETAIN_S, by adding its counts).
    """

    def __init__(self, stage_of: Callable[[int], int] | None = None,
                 steady_of: Callable[[int, int], bool] | None = None) -> None:
        self.stage_of = stage_of or (lambda second: 0)
        self.steady_of = steady_of or (lambda second, stage: True)
        self.whole = Window.lasting()
        self.stages: dict[int, Window] = {}
        self.edges: dict[int, Window] = {}  # per stage, the seconds counted in it that are not steady
        self.recent: dict[int, Window] = {}  # the seconds not yet settled, and the last RETAIN_S settled ones
        self.settled_before: int | None = None  # rows were handed out for every second before this one
        self.first_second: int | None = None  # the run's first row (its start), once known
        self.corrected: dict[int, Window] = {}  # settled seconds that got more data: their row, again
        self.partly: set[int] = set()  # ... of which only the late part is known (add it to the row)
        self.errors: dict[str, int] = {}
        self.cpu = CpuTally()  # the load processes' and machines' CPU per stage
        self.bytes = [0, 0]  # request bodies sent, response bodies received, by every load process

    @property
    def requests(self) -> int:
        return self.whole.requests

    @property
    def failures(self) -> int:
        return self.whole.failures

    @property
    def dropped(self) -> int:
        return self.whole.dropped

    def add(self, batch: dict[str, Any]) -> None:
        for sec, (counts, n, f, *stream) in batch.get("seconds", {}).items():
            self._second(int(sec), counts, n, f, 0, stream[0] if stream else None)
        for key, n in batch.get("errors", {}).items():
            self.errors[key] = self.errors.get(key, 0) + n
        for sec, n in batch.get("dropped", {}).items():
            self._second(int(sec), {}, 0, 0, n)
        if batch.get("cpu"):
            self.cpu.add(batch["cpu"], self.stage_of, self.first_second)
        if batch.get("bytes"):
            self.bytes = [self.bytes[0] + int(batch["bytes"][0]), self.bytes[1] + int(batch["bytes"][1])]

    def _second(self, sec: int, counts: Counts | list[int], n: int, f: int, d: int,
                stream: list[Any] | None = None) -> None:
        self.whole.add(counts, n, f, d, stream)
        stage = self.stage_of(sec)
        if stage not in self.stages:
            self.stages[stage] = Window.lasting()
        self.stages[stage].add(counts, n, f, d, stream)
        if not self.steady_of(sec, stage):  # (a stage's steady numbers are its requests' alone: no stream part)
            self.edges.setdefault(stage, Window()).add(counts, n, f, d)
        settled = self.settled_before is not None and sec < self.settled_before
        w = self.recent.get(sec) or self.corrected.get(sec)
        if w is None:
            w = Window()
            if settled:  # its counts are gone: only its requests, failures and dropped can be corrected
                self.partly.add(sec)
            else:
                self.recent[sec] = w
        w.add(counts, n, f, d, stream)
        if settled:
            self.corrected[sec] = w

    def steady(self, stage: int) -> Window:
        """The stage's steady seconds: its counts minus those of its edge seconds (counts subtract exactly)."""
        whole, edges = self.stages.get(stage) or Window(), self.edges.get(stage) or Window()
        counts = dict(whole.pairs())
        for value, n in edges.pairs():
            left = counts[value] - n
            if left:
                counts[value] = left
            else:
                del counts[value]
        return Window(whole.requests - edges.requests, whole.failures - edges.failures,
                      whole.dropped - edges.dropped, counts)

    def settle(self, before: int) -> list[tuple[int, Window]]:
        """Every second before ``before`` not handed out yet, in order, empty ones too: the rows to write."""
        start = self.settled_before
        if start is None:
            known = [s for s in (self.first_second, min(self.recent, default=None)) if s is not None]
            start = min(known) if known else before
        rows = [(sec, self.recent.get(sec) or Window()) for sec in range(start, before)]
        self.settled_before = max(start, before)
        for sec in [s for s in self.recent if s < self.settled_before - RETAIN_S]:
            del self.recent[sec]
        return rows

    def window(self, start: float, end: float) -> Window:
        """The recent seconds in [start, end), merged (the live line's last few seconds)."""
        w = Window()
        for sec, slot in self.recent.items():
            if int(start) <= sec < end:
                w.merge(slot, stream=False)  # (the live line shows requests' latency only)
        return w

    def to_json(self) -> dict[str, Any]:
        return {"whole": self.whole.to_json(), "stages": {str(i): w.to_json() for i, w in sorted(self.stages.items())},
                "edges": {str(i): w.to_json() for i, w in sorted(self.edges.items())}, "errors": self.errors,
                "cpu": self.cpu.to_json(), "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tally":
        t = cls()
        t.whole = Window.from_json(data["whole"])
        t.stages = {int(i): Window.from_json(w) for i, w in data.get("stages", {}).items()}
        t.edges = {int(i): Window.from_json(w, lasting=False) for i, w in data.get("edges", {}).items()}
        t.errors = dict(data.get("errors", {}))
        t.cpu = CpuTally.from_json(data.get("cpu"))
        t.bytes = list(data.get("bytes") or [0, 0])
        return t


CLOCK_TOLERANCE_S = 0.1


def clock_skew(sent_at: float | None, received_at: float) -> float:
    """How far a worker's clock is ahead of the master's, from a message stamped when sent (0 when within
    CLOCK_TOLERANCE_S: a message's trip on a network is well under that, so a larger gap is the clocks')."""
    if sent_at is None:
        return 0.0
    skew = received_at - sent_at
    return skew if abs(skew) > CLOCK_TOLERANCE_S else 0.0


def error_key(status: int | None, exception: BaseException | None, error_type: str | None = None) -> str:
    """`status:503` for an HTTP error reply, `status:400:ThrottlingException` when the reply names its AWS error
    code (``x-amzn-ErrorType``, whose text after a ':' is a namespace, as botocore reads it),
    `exception:ConnectionRefusedError` when there was no reply (geventhttpclient's ``RetriesExceeded`` by the
    error it wraps: `exception:TimeoutError` for a reply that did not come in time), and for a stream that
    broke after its 200 `stream:ModelStreamError` (the error it sent: see streaming.StreamFailure) or
    `stream:TimeoutError` (the reason it broke: it went quiet, the connection closed), never `status:200`."""
    code = getattr(exception, "stream_code", None)
    if code:
        return f"stream:{code}"
    if type(exception).__name__ == "RetriesExceeded" and isinstance(getattr(exception, "original", None),
                                                                     BaseException):
        exception = exception.original  # type: ignore[union-attr]
    if status and status < 400 and exception is not None:
        return f"stream:{type(exception).__name__}"
    if status:
        code = (error_type or "").split(":", 1)[0].strip()
        return f"status:{status}:{code}" if code else f"status:{status}"
    return f"exception:{type(exception).__name__ if exception else 'Unknown'}"
