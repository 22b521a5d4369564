"""Tests for the GSM 03.38 / UCS2 encoding, segment counting and splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partner_gateway.domain.encoding import (
    GSM7_PER_SEGMENT,
    GSM7_SINGLE_SEGMENT,
    UCS2_PER_SEGMENT,
    UCS2_SINGLE_SEGMENT,
    Encoding,
    analyze,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_parts,
    encode_ucs2,
    split,
)

# Independent copy of 3GPP TS 23.038 basic table (unicode.org GSM0338.TXT), as code points; None = ESC.
BASIC_CODEPOINTS: list[int | None] = [
    0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
    0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, None, 0xC6, 0xE6, 0xDF, 0xC9,
    *range(0x20, 0x24), 0xA4, *range(0x25, 0x40),
    0xA1, *range(0x41, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7,
    0xBF, *range(0x61, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
]  # fmt: skip
EXT_CODES = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E}
EXT_CODES |= {"|": 0x40, "\u20ac": 0x65}
BASIC_CHARS = "".join(chr(c) for c in BASIC_CODEPOINTS if c is not None)
EXT_CHARS = "".join(EXT_CODES)
EMOJI = "\U0001f600"  # 2 UTF-16 code units


def gsm_units(text: str) -> int:
    return sum(2 if ch in EXT_CODES else 1 for ch in text)


def ucs2_units(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def is_gsm(text: str) -> bool:
    return all(ch in BASIC_CHARS or ch in EXT_CODES for ch in text)


def min_segments(text: str) -> int:
    """Fewest contiguous parts, by dynamic programming (independent of the greedy split)."""
    cost, single, per = (
        (gsm_units, GSM7_SINGLE_SEGMENT, GSM7_PER_SEGMENT)
        if is_gsm(text)
        else (ucs2_units, UCS2_SINGLE_SEGMENT, UCS2_PER_SEGMENT)
    )
    if cost(text) <= single:
        return 1
    weights = [cost(ch) for ch in text]
    best = [0] + [len(text) + 1] * len(text)
    for end in range(1, len(text) + 1):
        used, start = 0, end
        while start > 0 and used + weights[start - 1] <= per:
            used += weights[start - 1]
            start -= 1
            best[end] = min(best[end], best[start] + 1)
    return best[-1]


# --- the tables -------------------------------------------------------------------------------------


def test_basic_table_matches_23_038() -> None:
    assert len(BASIC_CODEPOINTS) == 128
    encoded = encode_gsm7(BASIC_CHARS)
    assert list(encoded) == [code for code, cp in enumerate(BASIC_CODEPOINTS) if cp is not None]
    assert encode_gsm7("@$\u00c7") == bytes([0x00, 0x02, 0x09])


def test_extension_table_matches_23_038() -> None:
    for ch, code in EXT_CODES.items():
        assert encode_gsm7(ch) == bytes([0x1B, code])
        assert decode_gsm7(bytes([0x1B, code])) == ch


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("", Encoding.GSM7),
        ("hello \u20ac10 [x]", Encoding.GSM7),
        ("caf\u00e9", Encoding.GSM7),  # é is in the basic table
        ("f\u00eate", Encoding.UCS2),  # ê is not
        ("gar\u00e7on", Encoding.UCS2),  # only Ç is in the table, not ç
        ("back`tick", Encoding.UCS2),
        ("\x1b", Encoding.UCS2),  # ESC is not a character
        ("hi " + EMOJI, Encoding.UCS2),
    ],
)
def test_encoding_choice(text: str, encoding: Encoding) -> None:
    assert analyze(text).encoding is encoding


# --- segment boundaries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("", 0, 1),
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 153 * 2, 306, 2),
        ("a" * (153 * 2 + 1), 307, 3),
        ("\u20ac" * 80, 160, 1),
        ("\u20ac" * 80 + "a", 161, 2),
        ("\u00ea" * 70, 70, 1),
        ("\u00ea" * 71, 71, 2),
        ("\u00ea" * 67 * 2, 134, 2),
        ("\u00ea" * (67 * 2 + 1), 135, 3),
        (EMOJI * 35, 70, 1),
    ],
)
def test_units_and_segments(text: str, units: int, segments: int) -> None:
    info = analyze(text)
    assert (info.units, info.segments) == (units, segments)
    assert len(split(text)) == segments


def test_limits_reported() -> None:
    assert (analyze("a").single_segment_limit, analyze("a").per_segment_limit) == (160, 153)
    assert (analyze("\u00ea").single_segment_limit, analyze("\u00ea").per_segment_limit) == (70, 67)


def test_escape_at_boundary_moves_to_next_part() -> None:
    text = "a" * 152 + "\u20ac" + "b" * 10  # the € would occupy septets 153 and 154
    parts = split(text)
    assert parts == ["a" * 152, "\u20ac" + "b" * 10]
    assert analyze(text).segments == 2
    encoded = encode_parts(text).parts
    assert encoded[0] == b"a" * 152
    assert encoded[1][:2] == bytes([0x1B, 0x65])


def test_escapes_can_force_an_extra_part() -> None:
    text = ("a" + "{") * 100  # 300 septets, but no 2-septet char may straddle a cut
    assert analyze(text).units == 300
    assert analyze(text).segments == 2
    text = "a" + "{" * 153  # 307 septets: greedy 153+153+1 is the minimum
    assert analyze(text).segments == 3 == len(split(text))


def test_emoji_at_boundary_moves_whole_to_next_part() -> None:
    text = "\u00ea" * 66 + EMOJI + "\u00ea" * 10
    parts = split(text)
    assert parts == ["\u00ea" * 66, EMOJI + "\u00ea" * 10]
    encoded = encode_parts(text)
    assert encoded.data_coding == 0x08
    assert [len(p) for p in encoded.parts] == [132, 24]


# --- codecs -----------------------------------------------------------------------------------------


def test_encode_gsm7_rejects_non_gsm() -> None:
    with pytest.raises(ValueError, match=r"GSM 03\.38"):
        encode_gsm7("na\u00efve \u00ea")


def test_decode_gsm7_edge_cases() -> None:
    assert decode_gsm7(b"ab\x1b") == "ab "  # trailing lone ESC -> space
    assert decode_gsm7(b"\x1b\x41") == "A"  # ESC + code without extension meaning -> basic char
    assert decode_gsm7(b"\x1b\x1bx") == " x"  # ESC ESC (reserved) -> space
    with pytest.raises(ValueError, match="septet"):
        decode_gsm7(b"\x80")


def test_ucs2_round_trip_keeps_surrogate_pairs() -> None:
    assert encode_ucs2(EMOJI) == b"\xd8\x3d\xde\x00"
    assert decode_ucs2(encode_ucs2("f\u00eate " + EMOJI)) == "f\u00eate " + EMOJI


def test_encode_parts_gsm() -> None:
    out = encode_parts("a" * 161)
    assert (out.encoding, out.data_coding) == (Encoding.GSM7, 0x00)
    assert [len(p) for p in out.parts] == [153, 8]
    assert encode_parts("").parts == [b""]


# --- properties -------------------------------------------------------------------------------------

gsm_biased = st.text(
    alphabet=st.one_of(
        st.sampled_from(BASIC_CHARS),
        st.sampled_from(EXT_CHARS),
        st.sampled_from([EMOJI, "\U0001f44d", "\U0001f3fd", "\u00ea", "\u4e2d"]),
    ),
    max_size=500,
)
gsm_only = st.text(alphabet=st.sampled_from(BASIC_CHARS + EXT_CHARS), max_size=500)
long_gsm_biased = st.text(
    alphabet=st.one_of(st.sampled_from(BASIC_CHARS + EXT_CHARS), st.just(EMOJI)), min_size=60, max_size=700
)
any_text = st.one_of(
    st.text(max_size=400),
    st.text(min_size=60, max_size=400),  # mostly UCS2, usually multipart
    gsm_biased,
    gsm_only,
    st.text(alphabet=st.sampled_from(BASIC_CHARS + EXT_CHARS), min_size=150, max_size=700),
    long_gsm_biased,
)


@settings(max_examples=300)
@given(any_text)
def test_split_properties(text: str) -> None:
    info = analyze(text)
    parts = split(text)
    assert "".join(parts) == text
    assert len(parts) == info.segments
    assert info.encoding is (Encoding.GSM7 if is_gsm(text) else Encoding.UCS2)
    units = gsm_units if info.encoding is Encoding.GSM7 else ucs2_units
    assert info.units == units(text)
    limit = info.single_segment_limit if len(parts) == 1 else info.per_segment_limit
    assert all(units(p) <= limit for p in parts)
    assert info.segments == min_segments(text)


@settings(max_examples=300)
@given(any_text)
def test_encoded_parts_fit_and_never_split_sequences(text: str) -> None:
    out = encode_parts(text)
    multipart = len(out.parts) > 1
    if out.encoding is Encoding.GSM7:
        assert out.data_coding == 0x00
        assert all(len(p) <= (153 if multipart else 160) for p in out.parts)
        assert all(not p.endswith(b"\x1b") or p.endswith(b"\x1b\x1b") for p in out.parts)
        assert [decode_gsm7(p) for p in out.parts] == split(text)
        assert b"".join(out.parts) == encode_gsm7(text)
    else:
        assert out.data_coding == 0x08
        assert all(len(p) <= (134 if multipart else 140) for p in out.parts)
        for p in out.parts:
            assert not (p and 0xDC <= p[0] <= 0xDF)  # no part begins with a low surrogate
            assert not (p and 0xD8 <= p[-2] <= 0xDB)  # no part ends with a high surrogate
        assert [decode_ucs2(p) for p in out.parts] == split(text)  # each part decodes on its own
        assert b"".join(out.parts) == encode_ucs2(text)


@given(gsm_only)
def test_gsm_round_trip(text: str) -> None:
    assert decode_gsm7(encode_gsm7(text)) == text


@given(st.text(alphabet=st.sampled_from(BASIC_CHARS.replace("\x1b", "")), max_size=800))
def test_segments_without_extension_chars(text: str) -> None:
    n = len(text)
    expected = 1 if n <= 160 else (n + 152) // 153
    assert analyze(text).segments == expected


@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=400))
def test_segments_bmp_ucs2(text: str) -> None:
    info = analyze(text)
    if info.encoding is Encoding.UCS2:
        n = len(text)
        assert info.segments == (1 if n <= 70 else (n + 66) // 67)


def test_lone_surrogate_counts_one_unit() -> None:
    text = "\ud83d" * 71
    assert analyze(text).units == 71
    assert "".join(split(text)) == text
    with pytest.raises(ValueError, match="surrogate"):
        encode_parts(text)
