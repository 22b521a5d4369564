"""Message ids: ULIDs of the accepting millisecond, increasing within it, in python-ulid's spelling."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from ulid import ULID

from partner_gateway.domain.ids import MESSAGE_ID_PREFIX, could_be_message_id, new_message_id


@given(st.integers(0, 2**48 - 1))
@example(277_167_958_246_014)  # int(seconds * 1000) of this as a float of seconds is one short
def test_a_message_id_is_a_ulid_of_its_millisecond(epoch_ms: int) -> None:
    message_id = new_message_id(epoch_ms)
    assert message_id.startswith(MESSAGE_ID_PREFIX)
    assert could_be_message_id(message_id)
    ulid = ULID.from_str(message_id.removeprefix(MESSAGE_ID_PREFIX))
    assert str(ulid) == message_id.removeprefix(MESSAGE_ID_PREFIX)  # the canonical spelling
    assert ulid.milliseconds == epoch_ms


def test_ids_of_one_millisecond_increase_by_one() -> None:
    ids = [new_message_id(1_750_000_000_000) for _ in range(100)]
    values = [int(ULID.from_str(message_id.removeprefix(MESSAGE_ID_PREFIX))) for message_id in ids]
    assert values == list(range(values[0], values[0] + 100))
    later = new_message_id(1_750_000_000_001)
    assert later > ids[-1]
    assert new_message_id(1_750_000_000_000) != ids[0]  # a new millisecond's randomness is fresh
