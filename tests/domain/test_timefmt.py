"""format_ms builds its answer from cached pieces: it must equal formatting time.gmtime field by field."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.domain import timefmt
from partner_gateway.domain.timefmt import format_ms


def reference(epoch_ms: int) -> str:
    """The original implementation, kept here as the specification."""
    seconds, millis = divmod(epoch_ms, 1000)
    stamp = time.gmtime(seconds)
    return (
        f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}T"
        f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}.{millis:03d}Z"
    )


@given(st.integers(min_value=-62_135_596_800_000, max_value=2 * 253_402_300_799_999))
def test_same_text_as_gmtime_from_year_1_to_past_9999(epoch_ms: int) -> None:
    assert format_ms(epoch_ms) == reference(epoch_ms)


def test_edges_of_days_leap_days_and_the_epoch() -> None:
    stamps = [-1, 0, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999]
    stamps += [1_709_164_800_000 + delta for delta in (-1, 0, 1)]  # 2024-02-29
    stamps += [253_402_300_799_999, 253_402_300_800_000]  # the last ms of 9999, the first of 10000
    for stamp in stamps:
        assert format_ms(stamp) == reference(stamp), stamp


def test_the_day_cache_is_bounded() -> None:
    for day in range(timefmt.DAY_CACHE_SIZE + 100):
        format_ms(day * 86_400_000)
    assert timefmt._day_prefix.cache_info().currsize <= timefmt.DAY_CACHE_SIZE
