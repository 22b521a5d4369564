"""Signing secrets: made by the gateway, shown once, kept encrypted in the store so it can sign.

A secret is `whsec_` and 32 random bytes (URL-safe base64). The store keeps it sealed with
AES-256-GCM (`SecretBox`): a random 96-bit nonce per seal, the company's id as associated data (a
sealed secret copied onto another company's row does not open), `v1.` in front so the format can
change. The key is PARTNER_GATEWAY_CALLBACK_SECRET_KEY (through HKDF-SHA256) when set, so a copy
of the database alone reveals no secret; otherwise a random key kept in the store's
instance_secrets, which protects against a leaked row or backup of the callback table but not
against someone holding the whole database (docs/callbacks.md says so).
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SEALED_PREFIX = "v1."
KEY_BYTES = 32
NONCE_BYTES = 12
INSTANCE_SECRET_NAME = "callback-secret-key"  # noqa: S105 - a name
"""The name of the store-kept key in instance_secrets (when no key is configured)."""


def new_secret() -> str:
    """A fresh signing secret, as shown to the partner (and used as the HMAC key, UTF-8)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class UnreadableSecret(ValueError):
    """A sealed secret that this key does not open (another key, another company, altered)."""


class SecretBox:
    """Seals and opens signing secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_passphrase(cls, passphrase: str) -> SecretBox:
        """A box keyed by a configured key of any length (HKDF-SHA256 makes the AES key)."""
        derive = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=b"partner-gateway callback signing secrets",
        )
        return cls(derive.derive(passphrase.encode()))

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box with a random key of its own: what it seals opens only in this process."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, key: str) -> SecretBox:
        """A box keyed by a store-kept key (instance_secrets keeps 32 bytes as hex)."""
        return cls(bytes.fromhex(key))

    def seal(self, secret: str, company_id: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), company_id.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, company_id: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise UnreadableSecret("not a sealed secret of a known format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :])
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], company_id.encode()).decode()
        except (InvalidTag, ValueError) as error:
            raise UnreadableSecret("the secret does not open with this key") from error
