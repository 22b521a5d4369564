"""Checking a callback's signature (SPEC §5, docs/callbacks.md), and reading its body: a status
event (`CallbackEvent`) or an `inbound` one (`InboundEvent`, docs/inbound.md).

The gateway sends `X-Partner-Gateway-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`, each `v1`
the hex HMAC-SHA256 of `"<t>.<raw body>"` keyed with one of the company's secrets (UTF-8, exactly
as the gateway showed it). During the 24 hours after a rotation there is one `v1` per secret, so
a receiver that knows either the old or the new secret accepts the callback. A receiver holding
both passes both.

Check the raw bytes as they arrived: a body decoded and encoded again (re-ordered keys, other
spacing) no longer matches. The timestamp must be within `tolerance` seconds of now, either way:
that refuses a captured callback replayed later, and one stamped in the future.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping

from partner_gateway_sdk.errors import InvalidSignatureError
from partner_gateway_sdk.models import Event, event_from_json

SIGNATURE_HEADER = "X-Partner-Gateway-Signature"
EVENT_ID_HEADER = "X-Partner-Gateway-Event-Id"
DEFAULT_TOLERANCE = 300

HeaderValue = str | bytes
Headers = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[HeaderValue, HeaderValue]]


def verify_callback(
    secret_or_secrets: str | Iterable[str],
    headers: Headers,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> Event:
    """The callback's event, when its signature holds under one of the secrets and it is recent;
    InvalidSignatureError otherwise. A status event is a `CallbackEvent`, what a user sent an
    `InboundEvent` (its body has `"event": "inbound"`): tell them apart with `isinstance`.

    `headers` is any mapping or list of pairs of the request's headers (names in any case; an
    ASGI scope's raw `headers` list works as it is); `body` the raw bytes received.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    verify_signature(secret_or_secrets, header_value(headers, SIGNATURE_HEADER), raw, tolerance, now=now)
    return parse_callback(raw)


def parse_callback(body: bytes | str) -> Event:
    """A callback body already verified (or read back from your own store) as its event;
    InvalidSignatureError when it is not one (what was signed is not a callback this SDK reads)."""
    try:
        return event_from_json(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidSignatureError(f"the signed body is not a callback event: {error!r}") from error


def verify_signature(
    secret_or_secrets: str | Iterable[str],
    header: str | None,
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> int:
    """The header's timestamp when one of its `v1` signatures is `body`'s under one of the
    secrets and the timestamp is within `tolerance` seconds of `now`; InvalidSignatureError
    otherwise. Every comparison is constant-time."""
    secrets = [secret_or_secrets] if isinstance(secret_or_secrets, str) else list(secret_or_secrets)
    if not secrets or not all(secrets):
        raise ValueError("at least one non-empty secret is needed")
    if not header:
        raise InvalidSignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            raise InvalidSignatureError("the signature header is malformed")
        if name == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                raise InvalidSignatureError("the signature header's timestamp is malformed")
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value.encode("ascii", "replace"))
        # other schemes (a later v2) are skipped, so this keeps working when one is added
    if timestamp is None or not candidates:
        raise InvalidSignatureError("the signature header needs t= and at least one v1=")
    current = time.time() if now is None else now
    if current - timestamp > tolerance:
        raise InvalidSignatureError(
            f"the signature is {current - timestamp:.0f} s old (tolerance {tolerance} s)"
        )
    if timestamp - current > tolerance:
        raise InvalidSignatureError(
            f"the signature is dated {timestamp - current:.0f} s in the future (tolerance {tolerance} s)"
        )
    signed = b"%d." % timestamp + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        for candidate in candidates:
            # every pair compared, no early exit: the time taken says nothing of which matched
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignatureError("no signature matches the secrets")
    return timestamp


def header_value(headers: Headers, name: str) -> str | None:
    """The header's value whatever the case of its name (several lines joined by commas)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    values = [_text(value) for key, value in pairs if _text(key).lower() == wanted]
    return ",".join(values) if values else None


def _text(value: HeaderValue) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
