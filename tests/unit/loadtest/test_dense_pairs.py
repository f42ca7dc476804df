"""Reading a dense hdrh histogram back as (value, count) pairs (``hdr.dense_pairs``, what every summary refresh
does for the run, each stage and each stream part) gives exactly what hdrh's own index arithmetic gives."""

from __future__ import annotations

import random

import pytest

from sme.loadtest import hdr


def hdrh_pairs(h) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return [(h.get_value_from_index(i), int(c)) for i, c in enumerate(h.counts) if c]


@pytest.mark.parametrize("seed", range(40))
def test_the_pairs_are_hdrhs_own_for_any_values_and_counts(seed):
    r = random.Random(seed)
    h = hdr.new_histogram()
    for _ in range(r.choice([1, 2, 7, 60, 600])):
        value = r.choice([1, 2, 255, 256, 257, 2047, 2048, 2049, 4095, 65_535, 65_536, hdr.HIGHEST_US,
                          r.randint(1, 5_000), r.randint(1, hdr.HIGHEST_US)])
        # counts whose non-zero bytes sit anywhere in their 8-byte counter, the top one included
        h.record_value(value, r.choice([1, 2, 255, 256, 65_536, 2 ** 40, 2 ** 56, 2 ** 63 - 1]))
    assert hdr.dense_pairs(h) == hdrh_pairs(h)


def test_an_empty_histogram_and_the_first_and_last_counters():
    h = hdr.new_histogram()
    assert hdr.dense_pairs(h) == []
    h.record_value(hdr.LOWEST_US)  # counter 0
    h.record_value(hdr.HIGHEST_US, 3)  # in the last bucket
    assert hdr.dense_pairs(h) == hdrh_pairs(h) == [(1, 1), (hdr.HIGHEST_US >> 21 << 21, 3)]


def test_histograms_filled_every_way_sme_fills_them_read_back_whole():
    """dense_pairs looks only between the lowest and highest value hdrh keeps: every way a dense histogram
    is filled (sme's own dense_add, hdrh's add of another, hdrh's decode) must keep them."""
    from hdrh.histogram import HdrHistogram

    r = random.Random(7)
    h = hdr.new_histogram()
    hdr.dense_add(h, [(r.randint(1, 10_000_000), r.randint(1, 9)) for _ in range(300)])
    merged = hdr.new_histogram()
    merged.record_value(123_456_789)
    merged.add(h)
    decoded = HdrHistogram.decode(hdr.encode(merged))
    for each in (h, merged, decoded):
        assert hdr.dense_pairs(each) == hdrh_pairs(each) and len(hdrh_pairs(each)) > 250
