"""Latency statistics as HDR histograms: recorded per second in each load process, merged as histograms.

A load process keeps a ``Recorder``: per second of completion time, the counts per HDR histogram bucket
(microseconds, 3 significant digits) plus counts of requests, failures, errors and dropped open-model
arrivals. It hands its contents over with ``drain()`` as histograms (encoded, so they can travel in
Locust's worker reports) and starts afresh. The master's ``Tally`` merges drained batches by adding histograms and counts, never by
averaging percentiles, so totals across any number of processes and machines are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def decode(encoded: str | bytes) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(encoded)


def encode(hist: Any) -> str:
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else data


def _bucket_shape() -> tuple[int, int]:
    """(mask, offset) such that, for a value v in range, ``s = (v | mask).bit_length() - offset`` is the
    bit shift of v's HDR bucket: ``v >> s << s`` is the lowest value that histogram counts with v."""
    h = new_histogram()
    return h.sub_bucket_mask, h.sub_bucket_half_count_magnitude + 1


_MASK, _OFFSET = _bucket_shape()


class Recorder:
    """Per-process recording; cheap enough to call for every request.

    A request costs a dict increment, not an HDR ``record_value`` (pure Python, ~2.5 us, which was ~2% of
    a load process's CPU): each second keeps {lowest equivalent value: count}, the same bucket the
    histogram itself would use, and ``drain`` records those into a histogram once. The result is the
    same histogram, count for count (tested), at a fraction of the per-request cost.
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

    def drain(self, encoded: bool = True) -> dict[str, Any]:
        """Everything recorded since the last drain. Encoded histograms travel in worker reports; the
        local runner merges in the same process and skips the encode/decode round trip."""
        pack = (lambda c: encode(_histogram(c))) if encoded else _histogram
        out = {"seconds": {str(s): [pack(c), n, f] for s, (c, n, f) in self.seconds.items()},
               "errors": self.errors, "dropped": {str(s): n for s, n in self.dropped.items()}}
        self.seconds, self.errors, self.dropped = {}, {}, {}
        return out


def _histogram(counts: dict[int, int]) -> Any:
    hist = new_histogram()
    for value, n in counts.items():
        hist.record_value(value, n)
    return hist


@dataclass
class Second:
    parts: list[Any] = field(default_factory=list)  # encoded histograms (or histograms, locally)
    requests: int = 0
    failures: int = 0
    dropped: int = 0

    def histogram(self) -> Any:
        return merge(self.parts)


def merge(parts: Iterable[Any]) -> Any:
    hist = new_histogram()
    for part in parts:
        hist.add(decode(part) if isinstance(part, (str, bytes)) else part)
    return hist


class Tally:
    """The master's merge of every process's drained batches."""

    def __init__(self) -> None:
        self.seconds: dict[int, Second] = {}
        self.errors: dict[str, int] = {}
        self.requests = self.failures = self.dropped = 0

    def add(self, batch: dict[str, Any]) -> None:
        for sec, (part, n, f) in batch.get("seconds", {}).items():
            slot = self.seconds.setdefault(int(sec), Second())
            slot.parts.append(part)
            slot.requests += n
            slot.failures += f
            self.requests += n
            self.failures += f
            if len(slot.parts) > 8:  # keep memory flat on long runs with many workers
                slot.parts = [slot.histogram()]
        for key, n in batch.get("errors", {}).items():
            self.errors[key] = self.errors.get(key, 0) + n
        for sec, n in batch.get("dropped", {}).items():
            self.seconds.setdefault(int(sec), Second()).dropped += n
            self.dropped += n

    def window(self, start: float | None = None, end: float | None = None) -> "Window":
        """Merged numbers for the seconds in [start, end)."""
        w = Window()
        for sec, slot in self.seconds.items():
            if (start is None or sec >= int(start)) and (end is None or sec < end):
                w.requests += slot.requests
                w.failures += slot.failures
                w.dropped += slot.dropped
                for part in slot.parts:
                    w.hist.add(decode(part) if isinstance(part, (str, bytes)) else part)
        return w

    def to_json(self) -> dict[str, Any]:
        return {"seconds": {str(s): [[encode(v.histogram())] if v.parts else [], v.requests, v.failures,
                                     v.dropped] for s, v in sorted(self.seconds.items())},
                "requests": self.requests, "failures": self.failures, "dropped": self.dropped,
                "errors": self.errors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tally":
        t = cls()
        for sec, (enc, n, f, d) in data.get("seconds", {}).items():
            t.seconds[int(sec)] = Second(list(enc), n, f, d)
            t.requests, t.failures, t.dropped = t.requests + n, t.failures + f, t.dropped + d
        t.errors = dict(data.get("errors", {}))
        return t


@dataclass
class Window:
    requests: int = 0
    failures: int = 0
    dropped: int = 0
    hist: Any = field(default_factory=new_histogram)

    def percentiles_ms(self, *percentiles: float) -> list[float | None]:
        """Just these percentiles, in one pass: the live line needs p50 and p99 every second, and the full
        set (the mean above all) walks every bucket, which cost ~9% of a load process's CPU."""
        if self.hist.get_total_count() == 0:
            return [None] * len(percentiles)
        values = self.hist.get_percentile_to_value_dict(list(percentiles))
        return [values[p] / 1000.0 for p in percentiles]

    def latency_ms(self) -> dict[str, float | None]:
        h = self.hist
        if h.get_total_count() == 0:
            return {k: None for k in (*PERCENTILES, "max", "mean")}
        out: dict[str, float | None] = {k: h.get_value_at_percentile(p) / 1000.0 for k, p in PERCENTILES.items()}
        out["max"] = h.get_max_value() / 1000.0
        out["mean"] = round(h.get_mean_value() / 1000.0, 3)
        return out


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
