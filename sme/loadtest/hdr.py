"""HDR histogram arithmetic on plain count tables: {lowest equivalent value (us): count}.

The load engine counts latencies into the bucket an hdrh histogram (1 us to 1 h, 3 significant digits)
would use, without calling hdrh per value; these functions are that arithmetic, each tested equal to hdrh's
own (tests/unit/loadtest): bucket keys, percentiles read as hdrh reads them, and adding counts to, or reading
them from, a dense hdrh histogram with its index arithmetic inlined.
"""

from __future__ import annotations

from typing import Any, Iterable

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3

Counts = dict[int, int]  # lowest equivalent value (us) -> count: a sparse HDR histogram


def new_histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def encode(hist: Any) -> str:
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else data


def bucket_shape() -> tuple[int, int]:
    """(mask, offset) such that, for a value v in range, ``s = (v | mask).bit_length() - offset`` is the
    bit shift of v's HDR bucket: ``v >> s << s`` is the lowest value that histogram counts with v, and
    ``1 << s`` the width of its bucket."""
    h = new_histogram()
    return h.sub_bucket_mask, h.sub_bucket_half_count_magnitude + 1


MASK, OFFSET = bucket_shape()


def shift_of(us: int) -> int:
    return (us | MASK).bit_length() - OFFSET


def pairs_of(counts: Counts | list[int]) -> Iterable[tuple[int, int]]:
    """A count table, or the flat [value, count, value, count, ...] list it travels as."""
    if isinstance(counts, dict):
        return counts.items()
    return zip(counts[0::2], counts[1::2])


def flat(counts: Counts) -> list[int]:
    return [x for pair in counts.items() for x in pair]


def histogram(counts: Counts | list[int]) -> Any:
    """The hdrh histogram of these counts (for its encoded form: ~190 kB in memory while it lives)."""
    hist = new_histogram()
    for value, n in pairs_of(counts):
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
        out[p] = value + (1 << shift_of(value)) - 1 if p else value
    return out


def key_of(us: int) -> int:
    """The HDR bucket a value (whole us) is counted in: its lowest equivalent value (out of range: the ends)."""
    us = LOWEST_US if us < LOWEST_US else HIGHEST_US if us > HIGHEST_US else us
    shift = (us | MASK).bit_length() - OFFSET
    return us >> shift << shift


def count_into(counts: Counts, ms: float) -> None:
    """Count one latency (ms) in its HDR bucket of ``counts``."""
    key = key_of(int(ms * 1000.0 + 0.5))
    counts[key] = counts.get(key, 0) + 1


def buckets(values: dict[int, int]) -> Counts:
    """{whole microseconds: count} -> the same counts by HDR bucket (values out of range counted at its ends)."""
    counts: Counts = {}
    for us, n in values.items():
        key = key_of(us)
        counts[key] = counts.get(key, 0) + n
    return counts


def dense_add(h: Any, pairs: Iterable[tuple[int, int]]) -> None:
    """``h.record_value(value, n)`` for each pair, with hdrh's index arithmetic inlined (its pure-Python call
    costs ~1.5 us; a second of inter-token gaps fills a thousand buckets, added to the run and its stage)."""
    mask, unit, half_magnitude, half = h.sub_bucket_mask, h.unit_magnitude, h.sub_bucket_half_count_magnitude, \
        h.sub_bucket_half_count
    counts, total, lo, hi = h.counts, 0, h.min_value, h.max_value
    for value, n in pairs:
        bucket = (value | mask).bit_length() - unit - (half_magnitude + 1)
        counts[((bucket + 1) << half_magnitude) + (value >> (bucket + unit)) - half] += n
        total += n
        lo = value if value < lo else lo
        hi = value if value > hi else hi
    h.total_count += total
    h.min_value, h.max_value = lo, hi


_FLAG = bytes([0] + [1] * 255)  # bytes.translate table: a zero byte stays 0, any other becomes 1


def dense_pairs(h: Any) -> list[tuple[int, int]]:
    """An hdrh histogram's (lowest equivalent value, count) pairs, with ``get_value_from_index`` inlined.

    The load process refreshes the summary while requests are in flight, and every streamed token that
    arrives meanwhile is read that much later. So the ~23,000 counters are not visited one by one: only those
    between the histogram's lowest and highest value (hdrh keeps both as counts are added: ``record_value``,
    ``add``, ``dense_add``) are looked at, their bytes flagged (translate) and searched for the next non-zero
    one (find), both in C; only the counters that hold a count are read here (bench/refresh)."""
    if not h.total_count:
        return []
    half_magnitude, half, unit = h.sub_bucket_half_count_magnitude, h.sub_bucket_half_count, h.unit_magnitude
    words = memoryview(h.counts).cast("B").cast("Q")
    first, last = h._counts_index_for(h.min_value), h._counts_index_for(h.max_value)
    flags = words[first:last + 1].tobytes().translate(_FLAG)
    out = []
    at = flags.find(1)
    while at >= 0:
        i = first + (at >> 3)
        bucket, sub = (i >> half_magnitude) - 1, (i & (half - 1)) + half
        if bucket < 0:
            bucket, sub = 0, sub - half
        out.append((sub << (bucket + unit), words[i]))
        at = flags.find(1, (i + 1 - first) << 3)
    return out
