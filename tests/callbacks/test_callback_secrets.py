"""Signing secrets: their form, and sealing at rest (AES-GCM bound to the company)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.callbacks.secrets import SecretBox, UnreadableSecret, new_secret


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(secret) == len("whsec_") + 43  # 32 bytes, URL-safe base64 without padding


def test_sealed_secrets_open_only_with_their_key_and_company() -> None:
    box = SecretBox.from_passphrase("configured key")
    secret = new_secret()
    sealed = box.seal(secret, "cmp_a")
    assert secret not in sealed
    assert sealed.startswith("v1.")
    assert sealed != box.seal(secret, "cmp_a")  # a fresh nonce each time
    assert box.open(sealed, "cmp_a") == secret
    assert SecretBox.from_passphrase("configured key").open(sealed, "cmp_a") == secret
    with pytest.raises(UnreadableSecret):
        box.open(sealed, "cmp_b")
    with pytest.raises(UnreadableSecret):
        SecretBox.from_passphrase("another key").open(sealed, "cmp_a")
    with pytest.raises(UnreadableSecret):
        box.open(_flip_last_byte(sealed), "cmp_a")
    with pytest.raises(UnreadableSecret):
        box.open("plain", "cmp_a")


def _flip_last_byte(sealed: str) -> str:
    """The same sealed secret with its tag's last byte altered (editing a base64 character could
    change only the padding bits)."""
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[-1] ^= 1
    return "v1." + base64.urlsafe_b64encode(bytes(raw)).decode()


def test_a_store_kept_key_is_32_bytes_of_hex() -> None:
    box = SecretBox.from_hex("00" * 32)
    assert box.open(box.seal("whsec_x", "cmp_a"), "cmp_a") == "whsec_x"
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox.from_hex("00" * 16)


@given(st.text(max_size=100), st.text(max_size=40))
def test_round_trip(secret: str, company_id: str) -> None:
    box = SecretBox.ephemeral()
    assert box.open(box.seal(secret, company_id), company_id) == secret
