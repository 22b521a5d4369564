"""Delivery receipts: real-world text variants, TLV precedence, the SPEC §4 state table, id matching."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.channels.smpp.codec.pdu import DeliverSm, NetworkErrorCode
from partner_gateway.channels.smpp.receipts import (
    MESSAGE_STATE_TO_STAT,
    STATE_TO_STATUS,
    UNRECOGNISED_STATE,
    DeliveryReceipt,
    _general_fields,
    _standard_fields,
    _text_fields,
    canonical_message_id,
    is_receipt,
    message_id_variants,
    outcome_for,
    parse_receipt,
    parse_receipt_text,
    receipt_text_excerpt,
)

STATUSES = {"SENT", "RECEIVED", "DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"}


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


# (text, message_id, state, error_code, submit_date, done_date)
TEXT_VARIANTS = [
    pytest.param(
        "id:0221067780 sub:001 dlvrd:001 submit date:1906081652 done date:1906081653 "
        "stat:DELIVRD err:000 Text:Hello",
        "0221067780",
        "DELIVRD",
        "000",
        at(2019, 6, 8, 16, 52),
        at(2019, 6, 8, 16, 53),
        id="SMPP 3.4 appendix B",
    ),
    pytest.param(
        "id:1234 sub:001 dlvrd:001 submit date:190608165232 "
        "done date:190608165301 stat:UNDELIV err:075 text:",
        "1234",
        "UNDELIV",
        "075",
        at(2019, 6, 8, 16, 52, 32),
        at(2019, 6, 8, 16, 53, 1),
        id="12-digit dates",
    ),
    pytest.param(
        "id:0118Z-0122I-2309U-57DGB submitdate:1906081652 donedate:000000000000 stat:REJECTD err:0x1",
        "0118Z-0122I-2309U-57DGB",
        "REJECTD",
        "0x1",
        at(2019, 6, 8, 16, 52),
        None,
        id="no-space keys, zero date",
    ),
    pytest.param(
        "ID:AbC SUB:1 DLVRD:0 SUBMIT DATE:2611271200 DONE DATE:2611271201 "
        "STAT:failed ERR:SYS TEXT:stat:DELIVRD",
        "AbC",
        "FAILED",
        "SYS",
        at(2026, 11, 27, 12),
        at(2026, 11, 27, 12, 1),
        id="upper-case keys, stat in text",
    ),
    pytest.param("id:42 stat:BUFFRED", "42", "BUFFRED", None, None, None, id="minimal"),
    pytest.param(
        "id:42  submit_date : 2611271200 done_date: 9913321299 stat:NOCRED err:",
        "42",
        "NOCRED",
        None,
        at(2026, 11, 27, 12),
        None,
        id="underscore keys, invalid date, empty err",
    ),
    pytest.param(
        "id:7 dlvrd:000 status:SYSERR error:12", "7", "SYSERR", "12", None, None, id="status/error keys"
    ),
    pytest.param("id:7 err:1", "7", "", "1", None, None, id="no stat"),
]


@pytest.mark.parametrize(("text", "message_id", "state", "error", "submitted", "done"), TEXT_VARIANTS)
def test_text_variants(
    text: str,
    message_id: str,
    state: str,
    error: str | None,
    submitted: datetime | None,
    done: datetime | None,
) -> None:
    receipt = parse_receipt_text(text)
    assert receipt == DeliveryReceipt(
        message_id=message_id,
        state=state,
        error_code=error,
        submit_date=submitted,
        done_date=done,
        is_intermediate=state == "BUFFRED",
        raw_text=text,
    )


@pytest.mark.parametrize("text", ["", "hello", "id: stat:DELIVRD", "paid:12 stat:DELIVRD", "Text: id:1"])
def test_text_without_id_is_not_a_receipt(text: str) -> None:
    assert parse_receipt_text(text) is None


# --- the standard form's fast path --------------------------------------------------------------

STANDARD = "id:0a1B-2 sub:001 dlvrd:001 submit date:2611271200 done date:261127120130 stat:DELIVRD err:000 "


@pytest.mark.parametrize("text_key", ["Text:", "text:", "TEXT:"])
@pytest.mark.parametrize("text", ["Hello there", "", " id:9 stat:FAILED \t\0x", "ünïcode"])
def test_standard_form_takes_the_fast_path(text_key: str, text: str) -> None:
    receipt_text = STANDARD + text_key + text
    fields = _standard_fields(receipt_text)
    assert fields == _general_fields(receipt_text)
    assert fields == {
        "id": "0a1B-2", "sub": "001", "dlvrd": "001", "submitdate": "2611271200",
        "donedate": "261127120130", "stat": "DELIVRD", "err": "000", "text": text,
    }  # fmt: skip
    assert receipt_text_excerpt(receipt_text) == (text.strip() or None)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(STANDARD.upper() + "TEXT:hi", id="upper-case keys"),
        pytest.param(STANDARD.replace("submit date", "submitdate") + "Text:hi", id="other spelling"),
        pytest.param(STANDARD.replace(" sub:", "  sub:") + "Text:hi", id="double space"),
        pytest.param(STANDARD.replace(" sub:", "\tsub:") + "Text:hi", id="tab"),
        pytest.param(STANDARD.replace("0a1B-2", "a:b") + "Text:hi", id="colon in a value"),
        pytest.param(STANDARD.replace("0a1B-2", "a-stat:X") + "Text:hi", id="key in a value"),
        pytest.param(STANDARD.replace("0a1B-2", "a\0b") + "Text:hi", id="NUL in a value"),
        pytest.param(STANDARD.replace("0a1B-2", "é") + "Text:hi", id="non-ASCII value"),
        pytest.param(STANDARD.replace("stat:DELIVRD", "stat:DELIVRD\u00a0x") + "Text:hi", id="nbsp"),
        pytest.param(STANDARD.rstrip(), id="no text"),
        pytest.param("sub:001 " + STANDARD + "Text:hi", id="keys out of order"),
        pytest.param(STANDARD.replace("stat:", "status:") + "Text:hi", id="status key"),
        pytest.param(" " + STANDARD + "Text:hi", id="leading space"),
    ],
)
def test_other_forms_fall_back_to_the_general_parser(text: str) -> None:
    assert _standard_fields(text) is None
    assert _text_fields(text) == _general_fields(text)
    assert _text_fields(text).get("id") is not None


_STANDARD_KEYS = ("id:", " sub:", " dlvrd:", " submit date:", " done date:", " stat:", " err:", " Text:")
_PLAIN_VALUES = st.lists(st.from_regex(r"[!-9;-~]{0,8}", fullmatch=True), min_size=8, max_size=8)


@given(
    _PLAIN_VALUES,
    st.none() | st.tuples(st.integers(0, 7), st.text(max_size=8)),
    st.sampled_from([" ", " ", " ", "", "  ", "\t"]),
)
def test_fast_path_reads_what_the_general_parser_reads(
    values: list[str], odd: tuple[int, str] | None, gap: str
) -> None:
    """Standard-looking texts, perhaps with one value anything at all (spaces, colons, keys, NULs,
    Unicode) and other gaps: the fast path either declines or gives the general parser's fields."""
    if odd is not None:
        values[odd[0]] = odd[1]
    text = "".join(
        key.replace(" ", gap, 1) + value for key, value in zip(_STANDARD_KEYS, values, strict=True)
    )
    fast = _standard_fields(text)
    assert fast is None or fast == _general_fields(text)
    assert _text_fields(text) == _general_fields(text)


# --- the state table (SPEC §4 is binding) -------------------------------------------------------

SPEC_MAPPING = {
    "ENROUTE": "RECEIVED", "ACCEPTD": "RECEIVED", "DELIVRD": "DELIVERED", "EXPIRED": "EXPIRED",
    "UNDELIV": "ERROR", "REJECTD": "ERROR", "DELETED": "ERROR", "SKIPPED": "ERROR", "FAILED": "ERROR",
    "UNKNOWN": "UNKNOWN",
}  # fmt: skip


@pytest.mark.parametrize(("state", "status"), SPEC_MAPPING.items())
def test_state_table_follows_spec(state: str, status: str) -> None:
    assert STATE_TO_STATUS[state].status == status
    assert outcome_for(state.lower()) == STATE_TO_STATUS[state]


def test_state_table_is_well_formed() -> None:
    for state, outcome in STATE_TO_STATUS.items():
        assert state == state.upper()
        assert outcome.status in STATUSES
        assert outcome.final == (outcome.status in {"DELIVERED", "ERROR", "EXPIRED"})
        assert outcome.description
    assert set(MESSAGE_STATE_TO_STAT) == set(range(1, 10))
    assert set(MESSAGE_STATE_TO_STAT.values()) <= set(STATE_TO_STATUS)
    assert outcome_for("WHATEVER") is UNRECOGNISED_STATE
    assert outcome_for("").status == "UNKNOWN"
    assert STATE_TO_STATUS["DELIVRD"].description == "Delivered to the handset"


# --- receipts from deliver_sm -------------------------------------------------------------------

TEXT = b"id:1001 sub:001 dlvrd:001 submit date:2611271200 done date:261127120130 stat:DELIVRD err:000 Text:hi"


def deliver(**fields: Any) -> DeliverSm:
    return DeliverSm(sequence_number=1, source_addr="31612345678", destination_addr="ACME", **fields)


def test_text_only_receipt() -> None:
    receipt = parse_receipt(deliver(esm_class=0x04, short_message=TEXT))
    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.error_code) == ("1001", "DELIVRD", "000")
    assert (receipt.submit_date, receipt.done_date) == (at(2026, 11, 27, 12), at(2026, 11, 27, 12, 1, 30))
    assert not receipt.is_intermediate
    assert receipt.outcome.status == "DELIVERED"


def test_tlvs_win_over_text_and_text_fills_the_rest() -> None:
    pdu = deliver(
        esm_class=0x04,
        short_message=TEXT,
        receipted_message_id="3E9",
        message_state=5,
        network_error_code=NetworkErrorCode(3, 27),
    )
    receipt = parse_receipt(pdu)
    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.error_code) == ("3E9", "UNDELIV", "027")
    assert receipt.network_error_code == NetworkErrorCode(3, 27)
    assert receipt.done_date == at(2026, 11, 27, 12, 1, 30)
    assert receipt.outcome.status == "ERROR"


def test_tlv_only_receipt() -> None:
    receipt = parse_receipt(deliver(esm_class=0x04, receipted_message_id="abc", message_state=6))
    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.raw_text, receipt.is_intermediate) == (
        "abc",
        "ACCEPTD",
        "",
        True,
    )
    assert receipt.outcome.status == "RECEIVED"


def test_unmapped_message_state() -> None:
    fallback = parse_receipt(deliver(esm_class=0x04, short_message=TEXT, message_state=0))
    assert fallback is not None
    assert fallback.state == "DELIVRD"
    alone = parse_receipt(deliver(esm_class=0x04, receipted_message_id="1", message_state=42))
    assert alone is not None
    assert (alone.state, alone.outcome.status) == ("MESSAGE_STATE_42", "UNKNOWN")


def test_intermediate_notification_and_other_encodings() -> None:
    intermediate = parse_receipt(deliver(esm_class=0x20, short_message=b"id:5 stat:DELIVRD"))
    assert intermediate is not None
    assert intermediate.is_intermediate
    ucs2 = parse_receipt(
        deliver(esm_class=0x04, data_coding=8, short_message="id:6 stat:EXPIRED".encode("utf-16-be"))
    )
    assert ucs2 is not None
    assert (ucs2.message_id, ucs2.state) == ("6", "EXPIRED")
    payload = parse_receipt(deliver(esm_class=0x04, message_payload=b"id:7 stat:REJECTD err:0x0B\0"))
    assert payload is not None
    assert (payload.message_id, payload.state, payload.error_code) == ("7", "REJECTD", "0x0B")


def test_mobile_originated_message_is_not_a_receipt() -> None:
    mo = deliver(esm_class=0x00, short_message=b"id:1 stat:DELIVRD")
    assert not is_receipt(mo)
    assert parse_receipt(mo) is None
    assert parse_receipt(deliver(esm_class=0x04, short_message=b"no id here")) is None
    assert is_receipt(deliver(esm_class=0x00, receipted_message_id="1"))


# --- message id matching ------------------------------------------------------------------------


def test_message_id_variants() -> None:
    assert message_id_variants(" 0E999F21 ") == ("0E999F21", "0e999f21", "e999f21", "244948769")
    assert message_id_variants("0221067780") == ("0221067780", "221067780", "d2d3a04", "9144006528")
    assert message_id_variants("1101C1-C9D03D-F000") == ("1101C1-C9D03D-F000", "1101c1-c9d03d-f000")
    assert message_id_variants("000") == ("000", "0")
    assert message_id_variants("  ") == ()
    assert canonical_message_id("00Ab") == "ab"


@pytest.mark.parametrize(
    ("submit_id", "receipt_id"),
    [
        ("0221067780", "221067780"),  # leading zero lost by numeric parsing
        ("1101C1-C9D03D-F000", "1101c1-c9d03d-f000"),  # letter case
        ("0e999f21", "E999F21"),  # leading zero and case between hex forms
        ("E999F21", "244948769"),  # hex in submit_sm_resp, decimal in the receipt
        ("244948769", "0e999f21"),  # and the other way round
    ],
)
def test_receipt_ids_find_their_submission(submit_id: str, receipt_id: str) -> None:
    store = {canonical_message_id(submit_id): "our-message"}
    assert [store[v] for v in message_id_variants(receipt_id) if v in store] != []


# --- hypothesis ---------------------------------------------------------------------------------


@given(st.text())
def test_text_parser_never_raises(text: str) -> None:
    parse_receipt_text(text)


@given(st.integers(0, 0xFF), st.binary(max_size=300), st.integers(0, 0xFF), st.none() | st.integers(0, 0xFF))
def test_pdu_parser_never_raises(
    esm_class: int, short_message: bytes, coding: int, state: int | None
) -> None:
    parse_receipt(
        deliver(esm_class=esm_class, short_message=short_message, data_coding=coding, message_state=state)
    )


@given(st.text(max_size=80))
def test_message_id_variants_are_canonical_keys(raw: str) -> None:
    variants = message_id_variants(raw)
    assert len(set(variants)) == len(variants)
    if raw.strip():
        assert canonical_message_id(raw) in variants
        assert all(canonical_message_id(v) == v for v in variants[2:])


def _key(*spellings: str) -> st.SearchStrategy[str]:
    return st.sampled_from(spellings).flatmap(lambda k: st.sampled_from([k, k.upper(), k.title()]))


ids = st.from_regex(r"[0-9A-Za-z][0-9A-Za-z\-]{0,40}", fullmatch=True)
stats = st.sampled_from(sorted(STATE_TO_STATUS)) | st.from_regex(r"[A-Za-z]{3,8}", fullmatch=True)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@given(
    message_id=ids,
    stat=stats,
    err=st.none() | st.from_regex(r"[0-9A-Za-z]{1,6}", fullmatch=True),
    submitted=st.none() | moments,
    done=st.none() | moments,
    seconds=st.booleans(),
    text=st.none() | printable,
    keys=st.tuples(
        _key("id"),
        _key("submit date", "submitdate", "submit_date"),
        _key("done date", "donedate", "done_date"),
        _key("stat"),
        _key("err"),
        _key("text"),
    ),
)
def test_generated_receipt_texts_are_recovered(
    message_id: str,
    stat: str,
    err: str | None,
    submitted: datetime | None,
    done: datetime | None,
    seconds: bool,
    text: str | None,
    keys: tuple[str, str, str, str, str, str],
) -> None:
    date_format = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"
    parts = [f"{keys[0]}:{message_id}", "sub:001", "dlvrd:001"]
    parts += [f"{keys[1]}:{submitted.strftime(date_format)}"] if submitted else []
    parts += [f"{keys[2]}:{done.strftime(date_format)}"] if done else []
    parts += [f"{keys[3]}:{stat}"] + ([f"{keys[4]}:{err}"] if err else [])
    parts += [f"{keys[5]}:{text}"] if text is not None else []
    receipt = parse_receipt_text(" ".join(parts))

    def expected(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return moment.replace(microsecond=0, second=moment.second if seconds else 0, tzinfo=UTC)

    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.error_code) == (message_id, stat.upper(), err)
    assert (receipt.submit_date, receipt.done_date) == (expected(submitted), expected(done))
    assert receipt.is_intermediate == (outcome_for(stat).status == "RECEIVED")
