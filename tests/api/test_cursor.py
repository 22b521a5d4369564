"""The cursor codec: opaque, tamper-evident, bound to company and filters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.api.cursor import CursorCodec, InvalidCursor
from partner_gateway.domain.messages import HistoryPosition

CODEC = CursorCodec(b"k" * 32)
positions = st.builds(
    HistoryPosition,
    created_at=st.integers(min_value=0, max_value=2**53),
    message_id=st.text(min_size=1, max_size=40),
)
scopes = st.text(max_size=60)
companies = st.text(min_size=1, max_size=40)


@given(companies, scopes, positions)
def test_round_trip(company: str, scope: str, position: HistoryPosition) -> None:
    token = CODEC.encode(company, scope, position)
    assert token.isascii()
    assert CODEC.decode(company, scope, token) == position


@given(companies, companies, scopes, scopes, positions)
def test_bound_to_company_and_scope(
    company: str, other_company: str, scope: str, other_scope: str, position: HistoryPosition
) -> None:
    token = CODEC.encode(company, scope, position)
    if (company, scope) != (other_company, other_scope):
        with pytest.raises(InvalidCursor):
            CODEC.decode(other_company, other_scope, token)


@given(positions, st.data())
def test_any_single_character_edit_is_refused(position: HistoryPosition, data: st.DataObject) -> None:
    token = CODEC.encode("c", "s", position)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCabc019-_.").filter(lambda c: c != token[index]))
    edited = token[:index] + replacement + token[index + 1 :]
    try:
        decoded = CODEC.decode("c", "s", edited)
    except InvalidCursor:
        return
    # Base64 padding bits can absorb an edit of the last character without changing the bytes.
    assert decoded == position


@given(st.text(max_size=300))
def test_arbitrary_text_is_refused_cleanly(token: str) -> None:
    with pytest.raises(InvalidCursor):
        CODEC.decode("c", "s", token)


def test_another_key_refuses_the_cursor() -> None:
    token = CODEC.encode("c", "s", HistoryPosition(1, "msg_1"))
    with pytest.raises(InvalidCursor):
        CursorCodec(b"x" * 32).decode("c", "s", token)
