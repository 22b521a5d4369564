"""The pure rules of inbound messages (domain/inbound.py): opt-out keywords, numbers as they are
assigned and matched, short messages decoded, and a concatenated message's parts joined."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.domain.encoding import encode_parts
from partner_gateway.domain.inbound import (
    DEFAULT_KEYWORDS,
    InboundPart,
    OptKeywords,
    decode_sms,
    display_number,
    join_parts,
    normalize_number,
)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", "opt_out"),
        (" stop! ", "opt_out"),
        ("StopAll", "opt_out"),
        ("unsubscribe.", "opt_out"),
        ("CANCEL", "opt_out"),
        ("end", "opt_out"),
        ("Quit", "opt_out"),
        ("START", "opt_in"),
        ("unstop", "opt_in"),
        ("stop it", None),
        ("please stop", None),
        ("STOPP", None),
        ("", None),
        ("...", None),
    ],
)
def test_default_keywords(text: str, action: str | None) -> None:
    assert DEFAULT_KEYWORDS.action(text) == action


def test_keywords_are_configurable() -> None:
    keywords = OptKeywords.of([" halt ", "Arrêt"], ["go"])
    assert keywords.action("ARRÊT") == "opt_out"
    assert keywords.action("halt") == "opt_out"
    assert keywords.action("stop") is None
    assert keywords.action("Go!") == "opt_in"


@pytest.mark.parametrize(
    ("given_", "normal", "shown"),
    [
        ("+49 151 1234-5678", "4915112345678", "+4915112345678"),
        ("4915112345678", "4915112345678", "+4915112345678"),
        ("(555) 000.1234", "5550001234", "+5550001234"),
        ("12345", "12345", "12345"),
        ("sim-agent", "sim-agent", "sim-agent"),
        ("Brand_Agent@rbm.goog", "Brand_Agent@rbm.goog", "Brand_Agent@rbm.goog"),
    ],
)
def test_numbers(given_: str, normal: str, shown: str) -> None:
    assert normalize_number(given_) == normal
    assert display_number(given_) == shown


@given(st.text(max_size=600))
def test_any_text_split_and_encoded_as_a_handset_does_is_joined_back(text: str) -> None:
    try:
        encoded = encode_parts(text)
    except ValueError:  # a lone surrogate: no handset can send it
        return
    parts = [
        InboundPart("smpp:a", "+1", "2", 5, len(encoded.parts), i, encoded.data_coding, payload, i)
        for i, payload in enumerate(encoded.parts, start=1)
    ]
    joined = join_parts(list(reversed(parts)), "k")
    assert joined.text == text[:10_000]
    assert joined.parts == len(parts)
    assert joined.received_at == len(parts)


def test_decoding_never_raises_on_malformed_ucs2() -> None:
    assert decode_sms(8, b"\xd8\x3d")[1] == "text"  # a lone high surrogate
