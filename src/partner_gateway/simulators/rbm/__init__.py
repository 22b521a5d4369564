"""RBM simulator: Google's RCS Business Messaging API on loopback (a Litestar app served by uvicorn in the
current event loop), with its OAuth token endpoint and the webhook it posts events to.

- ``POST /token``: the JWT bearer grant; the assertion's RS256 signature is checked with the service
  account's public key (``RbmSimConfig.public_key_pem``), as are ``aud`` (our token URI), ``iss``,
  ``scope`` and ``exp``. Refusals are Google's ``400 {"error": "invalid_grant", ...}``.
- ``POST /v1/phones/{E.164}/agentMessages?messageId=&agentId=``: bearer check (401 UNAUTHENTICATED),
  agent check (403), body check (400 INVALID_ARGUMENT), a messageId already accepted (409
  ALREADY_EXISTS), then the fate below. ``DELETE .../agentMessages/{messageId}`` revokes a message
  not yet delivered (200) or answers 404.
- Events are POSTed to ``webhook_url`` in the Pub/Sub push format, signed ``X-Goog-Signature`` exactly as
  RBM does (base64 HMAC-SHA512 of the decoded data, keyed by the client token); a non-2xx answer is
  retried ``webhook_attempts`` times in all. :meth:`RbmSimulator.verify_webhook` performs the setup
  handshake.

The fate comes from the destination's last two digits (SPEC §6). RBM reports only what it knows, so
where SPEC's table names a state RBM has no event for, the closest documented behaviour is used:

| digits | answer to the create | events afterwards |
|---|---|---|
| 00-49 | 200 | DELIVERED, then READ |
| 50-89, 99 | 200 | DELIVERED |
| 90 | 404 NOT_FOUND: not RCS-capable (the SMS fallback cue) | none |
| 91 | 400 INVALID_ARGUMENT: the device lacks a feature the message uses. RBM has no "undeliverable" event: a destination that cannot take a message is refused at submission | none |
| 92 | 200 | TTL_EXPIRATION_REVOKED when the message's ttl ends (none without a ttl) |
| 97 | 404 NOT_FOUND, as 90, for a number the SMSC simulator delivers to: the fallback SMS arrives | none |
| 98 | 200 | TTL_EXPIRATION_REVOKED at the ttl, as 92, for a number the SMSC simulator delivers to: the fallback on revocation (``fallbackSms.afterSeconds``) arrives |
| 93 | 200 | IS_TYPING (no messageId, as RBM sends it), then TTL_EXPIRATION_REVOKE_FAILED at the ttl: RBM has no intermediate delivery state, so only non-final events come |
| 94 | 200 | none |
| 95 | 200 | EVENT_TYPE_UNSPECIFIED: RBM's "not specified" state |
| 96 | ``rejection_status``: 400 INVALID_ARGUMENT (default), or 403 PERMISSION_DENIED as older RBM pages describe for an agent not launched on the user's carrier | none |
"""

from partner_gateway.simulators.rbm.rules import (
    RbmFate,
    RbmSimConfig,
    RbmSimScript,
    RbmSimStats,
    check_agent_message,
    fate_for,
)
from partner_gateway.simulators.rbm.server import RbmSimulator

__all__ = [
    "RbmFate",
    "RbmSimConfig",
    "RbmSimScript",
    "RbmSimStats",
    "RbmSimulator",
    "check_agent_message",
    "fate_for",
]
