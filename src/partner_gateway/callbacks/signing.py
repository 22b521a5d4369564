"""The callback signature: `X-Partner-Gateway-Signature: t=<unix>,v1=<hex>[,v1=<hex>]` (SPEC §5).

Each `v1` is the hex HMAC-SHA256 of `"<t>.<raw body>"` keyed with a secret's UTF-8 bytes exactly
as the partner was shown it; during a rotation there is one `v1` per secret, the newest first.
A receiver accepts the request when any `v1` matches one of its secrets and `t` is recent
(`verify`: the same rule, for partners' docs and a local receiver).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

SIGNATURE_HEADER = "X-Partner-Gateway-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The header is malformed, stale, or matches none of the secrets."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`'s UTF-8 bytes."""
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header's value: `t=<timestamp>` and one `v1=` per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return ",".join([f"t={timestamp}", *(f"v1={signature(secret, timestamp, body)}" for secret in secrets)])


def verify(
    header: str,
    body: bytes,
    secrets: Iterable[str],
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """The header's timestamp when one of its `v1` signatures is `body`'s under one of `secrets`
    and the timestamp is within `tolerance_seconds` of `now`; InvalidSignature otherwise. Every
    comparison is constant-time."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            raise InvalidSignature("the signature header is malformed")
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise InvalidSignature("the signature header's timestamp is malformed")
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
        # other schemes (a later v2) are skipped, so receivers keep working when one is added
    if timestamp is None or not candidates:
        raise InvalidSignature("the signature header needs t= and at least one v1=")
    if abs(now - timestamp) > tolerance_seconds:
        raise InvalidSignature("the signature's timestamp is too old or in the future")
    matched = False
    for secret in secrets:
        expected = signature(secret, timestamp, body).encode()
        for candidate in candidates:
            # every pair compared (no early exit): the time taken says nothing of which matched
            matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    if not matched:
        raise InvalidSignature("no signature matches")
    return timestamp
