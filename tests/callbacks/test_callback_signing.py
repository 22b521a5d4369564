"""The signature header: fixed vectors (computed with openssl), round trips, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.callbacks.signing import InvalidSignature, sign, signature, verify

BODY = b'{"eventId":"evt_1"}'
T = 1_700_000_000
# printf '%s' '1700000000.{"eventId":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
NEW = "e5d7e0bf889a38c38767b47b28f8d24b766e8a958515f0f2056f461e17ca73af"
OLD = "3abe849e614934f1f102a68861670b371d045e7b93cbf56d750cb18bf59d47af"


def test_vectors() -> None:
    assert signature("whsec_test", T, BODY) == NEW
    assert sign(["whsec_test"], T, BODY) == f"t={T},v1={NEW}"
    assert sign(["whsec_test", "whsec_old"], T, BODY) == f"t={T},v1={NEW},v1={OLD}"


def test_either_secret_verifies_during_a_rotation() -> None:
    header = sign(["whsec_test", "whsec_old"], T, BODY)
    assert verify(header, BODY, ["whsec_test"], now=T) == T
    assert verify(header, BODY, ["whsec_old"], now=T) == T
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(header, BODY, ["whsec_other"], now=T)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sign([], T, BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "malformed"),
        (f"v1={NEW}", "needs t="),
        (f"t={T}", "needs t="),
        (f"t=abc,v1={NEW}", "timestamp is malformed"),
        (f"t={T},t={T},v1={NEW}", "timestamp is malformed"),
        (f"t=-{T},v1={NEW}", "timestamp is malformed"),
        (f"t={T},v1={NEW[:-1]}0", "no signature matches"),
        (f"t={T},v1=é", "no signature matches"),
        (f"t={T - 301},v1={signature('whsec_test', T - 301, BODY)}", "too old"),
        (f"t={T + 301},v1={signature('whsec_test', T + 301, BODY)}", "too old or in the future"),
    ],
)
def test_refusals(header: str, reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(header, BODY, ["whsec_test"], now=T)


def test_unknown_schemes_are_skipped() -> None:
    assert verify(f"t={T},v2=whatever,v1={NEW}", BODY, ["whsec_test"], now=T) == T


secrets = st.text(min_size=1, max_size=60)
bodies = st.binary(max_size=2000)
stamps = st.integers(min_value=0, max_value=2**40)


@given(st.lists(secrets, min_size=1, max_size=3), bodies, stamps)
def test_round_trip(keys: list[str], body: bytes, timestamp: int) -> None:
    header = sign(keys, timestamp, body)
    for key in keys:
        assert verify(header, body, [key], now=timestamp) == timestamp


@given(secrets, bodies, bodies, stamps)
def test_another_body_does_not_verify(key: str, body: bytes, other: bytes, timestamp: int) -> None:
    header = sign([key], timestamp, body)
    if other != body:
        with pytest.raises(InvalidSignature):
            verify(header, other, [key], now=timestamp)


@given(secrets, secrets, bodies, stamps)
def test_another_secret_does_not_verify(key: str, other: str, body: bytes, timestamp: int) -> None:
    if other != key:
        with pytest.raises(InvalidSignature):
            verify(sign([key], timestamp, body), body, [other], now=timestamp)
