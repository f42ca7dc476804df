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

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
RETAIN_S = 10  # seconds a settled second's counts are kept, so a batch that comes late still lands exactly

Counts = dict[int, int]  # lowest equivalent value (us) -> count: a sparse HDR histogram


def new_histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def encode(hist: Any) -> str:
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else data


def _bucket_shape() -> tuple[int, int]:
    """(mask, offset) such that, for a value v in range, ``s = (v | mask).bit_length() - offset`` is the
    bit shift of v's HDR bucket: ``v >> s << s`` is the lowest value that histogram counts with v, and
    ``1 << s`` the width of its bucket."""
    h = new_histogram()
    return h.sub_bucket_mask, h.sub_bucket_half_count_magnitude + 1


_MASK, _OFFSET = _bucket_shape()


def _shift(us: int) -> int:
    return (us | _MASK).bit_length() - _OFFSET


def _pairs(counts: Counts | list[int]) -> Iterable[tuple[int, int]]:
    """A count table, or the flat [value, count, value, count, ...] list it travels as."""
    if isinstance(counts, dict):
        return counts.items()
    return zip(counts[0::2], counts[1::2])


def flat(counts: Counts) -> list[int]:
    return [x for pair in counts.items() for x in pair]


def histogram(counts: Counts | list[int]) -> Any:
    """The hdrh histogram of these counts (for its encoded form: ~190 kB in memory while it lives)."""
    hist = new_histogram()
    for value, n in _pairs(counts):
        hist.record_value(value, n)
    return hist


def percentiles_us(pairs: list[tuple[int, int]], percentiles: Iterable[float]) -> dict[float, int]:
    """What hdrh's ``get_percentile_to_value_dict`` answers for a histogram of these (value, count) pairs
    (sorted by value): for each percentile, the highest value equivalent to the bucket where the running
    count reaches ``max(1, int(p * total / 100 + 0.5))`` (the lowest one for p = 0)."""
    total = sum(n for _, n in pairs)
    out: dict[float, int] = {}
    if not total:
        return out
    running, k = 0, 0
    for p in sorted(set(percentiles)):
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        while running < target and k < len(pairs):
            running += pairs[k][1]
            k += 1
        value = pairs[k - 1][0]
        out[p] = value + (1 << _shift(value)) - 1 if p else value
    return out


class Recorder:
    """Per-process recording; cheap enough to call for every request.

    A request costs a dict increment, not an HDR ``record_value`` (pure Python, ~2.5 us, which was ~2% of
    a load process's CPU): each second keeps {lowest equivalent value: count}, the same bucket the
    histogram itself would use (tested).
    """

    def __init__(self) -> None:
        self.seconds: dict[int, list] = {}  # second -> [{lowest equivalent value (us): count}, requests, failures]
        self.errors: dict[str, int] = {}
        self.dropped: dict[int, int] = {}
        self.offset = 0.0  # this process's clock minus the master's (see clock_skew)

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
        shift = (us | _MASK).bit_length() - _OFFSET
        key = us >> shift << shift
        counts = slot[0]
        counts[key] = counts.get(key, 0) + 1
        slot[1] += 1
        if error is not None:
            slot[2] += 1
            self.errors[error] = self.errors.get(error, 0) + 1

    def drop(self, due_at: float) -> None:
        sec = int(due_at - self.offset)
        self.dropped[sec] = self.dropped.get(sec, 0) + 1

    def drain(self, wire: bool = True) -> dict[str, Any]:
        """Everything recorded since the last drain. For a worker report (``wire``) the count tables are
        flat lists (msgpack and JSON keep them as they are); the local runner takes the dicts."""
        pack = flat if wire else (lambda c: c)
        out = {"seconds": {str(s): [pack(c), n, f] for s, (c, n, f) in self.seconds.items()},
               "errors": self.errors, "dropped": {str(s): n for s, n in self.dropped.items()}}
        self.seconds, self.errors, self.dropped = {}, {}, {}
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

    @classmethod
    def lasting(cls) -> "Window":
        return cls(dense=new_histogram())

    def add(self, counts: Counts | list[int], requests: int = 0, failures: int = 0, dropped: int = 0) -> None:
        if self.dense is not None:
            record = self.dense.record_value
            for value, n in _pairs(counts):
                record(value, n)
        else:
            mine = self.counts
            for value, n in _pairs(counts):
                mine[value] = mine.get(value, 0) + n
        self.requests += requests
        self.failures += failures
        self.dropped += dropped

    def merge(self, other: "Window") -> None:
        self.add(dict(other.pairs()), other.requests, other.failures, other.dropped)

    def pairs(self) -> list[tuple[int, int]]:
        """(lowest equivalent value, count) of every bucket with a count, by value."""
        if self.dense is not None:
            h = self.dense
            return [(h.get_value_from_index(i), n) for i, n in enumerate(h.counts) if n]
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
        out["max"] = (top + (1 << _shift(top)) - 1) / 1000.0
        # hdrh's mean: each bucket counted at its middle, summed as integers, divided once
        total = sum(n * (v + ((1 << _shift(v)) >> 1)) for v, n in pairs)
        out["mean"] = round(total / sum(n for _, n in pairs) / 1000.0, 3)
        return out

    def to_json(self) -> list[Any]:
        return [[x for pair in self.pairs() for x in pair], self.requests, self.failures, self.dropped]

    @classmethod
    def from_json(cls, data: list[Any]) -> "Window":
        w = cls.lasting()
        w.add(data[0], data[1], data[2], data[3])
        return w


class Tally:
    """The merge of every process's drained batches, in memory that does not grow with the run.

    ``stage_of(second)`` says which stage a second's requests count in (each second in exactly one stage,
    so the stages add up to the whole). The last seconds are kept apart until ``settle`` hands them out
    as rows, and for RETAIN_S more: a batch for a second already handed out (a worker's report that came
    late) still counts exactly in the whole and its stage, and lands in ``corrected`` so that its row can
    be written again at the end (whole; or, for a batch later than RETAIN_S, by adding its counts).
    """

    def __init__(self, stage_of: Callable[[int], int] | None = None) -> None:
        self.stage_of = stage_of or (lambda second: 0)
        self.whole = Window.lasting()
        self.stages: dict[int, Window] = {}
        self.recent: dict[int, Window] = {}  # the seconds not yet settled, and the last RETAIN_S settled ones
        self.settled_before: int | None = None  # rows were handed out for every second before this one
        self.first_second: int | None = None  # the run's first row (its start), once known
        self.corrected: dict[int, Window] = {}  # settled seconds that got more data: their row, again
        self.partly: set[int] = set()  # ... of which only the late part is known (add it to the row)
        self.errors: dict[str, int] = {}

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
        for sec, (counts, n, f) in batch.get("seconds", {}).items():
            self._second(int(sec), counts, n, f, 0)
        for key, n in batch.get("errors", {}).items():
            self.errors[key] = self.errors.get(key, 0) + n
        for sec, n in batch.get("dropped", {}).items():
            self._second(int(sec), {}, 0, 0, n)

    def _second(self, sec: int, counts: Counts | list[int], n: int, f: int, d: int) -> None:
        self.whole.add(counts, n, f, d)
        stage = self.stage_of(sec)
        if stage not in self.stages:
            self.stages[stage] = Window.lasting()
        self.stages[stage].add(counts, n, f, d)
        settled = self.settled_before is not None and sec < self.settled_before
        w = self.recent.get(sec) or self.corrected.get(sec)
        if w is None:
            w = Window()
            if settled:  # its counts are gone: only its requests, failures and dropped can be corrected
                self.partly.add(sec)
            else:
                self.recent[sec] = w
        w.add(counts, n, f, d)
        if settled:
            self.corrected[sec] = w

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
                w.merge(slot)
        return w

    def to_json(self) -> dict[str, Any]:
        return {"whole": self.whole.to_json(), "stages": {str(i): w.to_json() for i, w in sorted(self.stages.items())},
                "errors": self.errors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tally":
        t = cls()
        t.whole = Window.from_json(data["whole"])
        t.stages = {int(i): Window.from_json(w) for i, w in data.get("stages", {}).items()}
        t.errors = dict(data.get("errors", {}))
        return t


CLOCK_TOLERANCE_S = 0.1


def clock_skew(sent_at: float | None, received_at: float) -> float:
    """How far a worker's clock is ahead of the master's, from a message stamped when sent (0 when within
    CLOCK_TOLERANCE_S: a message's trip on a network is well under that, so a larger gap is the clocks')."""
    if sent_at is None:
        return 0.0
    skew = received_at - sent_at
    return skew if abs(skew) > CLOCK_TOLERANCE_S else 0.0


def error_key(status: int | None, exception: BaseException | None) -> str:
    """`status:503` for an HTTP error reply, `exception:ConnectionRefusedError` when there was no reply."""
    if status:
        return f"status:{status}"
    return f"exception:{type(exception).__name__ if exception else 'Unknown'}"
