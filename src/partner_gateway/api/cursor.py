"""History cursors: opaque, tamper-evident keyset positions.

A cursor is `base64url(payload) "." base64url(mac)`. The payload holds only the position (the
last item's createdAt and id); the MAC, an HMAC-SHA256 truncated to 128 bits, also covers the
company and the page's filters, so a cursor edited by hand, taken from another company or
replayed with other filters fails verification and is refused as a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from partner_gateway.domain.messages import HistoryPosition

_VERSION = 1
_MAC_BYTES = 16
MAX_CURSOR_LENGTH = 256


class InvalidCursor(ValueError):
    pass


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("cursor key must be at least 16 bytes")
        self._key = key

    def _mac(self, company_id: str, scope: str, payload: bytes) -> bytes:
        message = company_id.encode() + b"\x00" + scope.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, company_id: str, scope: str, position: HistoryPosition) -> str:
        """`scope` names the filters the cursor is valid for (see api/history.py)."""
        payload = msgspec.json.encode([_VERSION, position.created_at, position.message_id])
        return _b64encode(payload) + "." + _b64encode(self._mac(company_id, scope, payload))

    def decode(self, company_id: str, scope: str, token: str) -> HistoryPosition:
        if len(token) > MAX_CURSOR_LENGTH or token.count(".") != 1 or not token.isascii():
            raise InvalidCursor("malformed cursor")
        encoded_payload, encoded_mac = token.split(".")
        try:
            payload = _b64decode(encoded_payload)
            mac = _b64decode(encoded_mac)
        except (binascii.Error, ValueError):
            raise InvalidCursor("malformed cursor") from None
        if not hmac.compare_digest(mac, self._mac(company_id, scope, payload)):
            raise InvalidCursor("cursor is not valid for this company and these filters")
        try:
            version, created_at, message_id = msgspec.json.decode(payload, type=tuple[int, int, str])
        except msgspec.DecodeError:
            raise InvalidCursor("malformed cursor") from None
        if version != _VERSION:
            raise InvalidCursor("cursor from an unsupported version")
        return HistoryPosition(created_at=created_at, message_id=message_id)
