"""RCS over Google's RCS Business Messaging API: the provider that sends agent messages and reads the
webhook that reports what became of them.

Sending is ``POST {base_url}/v1/phones/{E.164}/agentMessages?messageId=...&agentId=...`` with a bearer
token (:mod:`.auth`) and an AgentMessage body (:mod:`.content`). The messageId is derived from ours, so
a resend of the same message carries the same id and RBM ignores it (or answers 409 ALREADY_EXISTS):
every resend is safe. How each answer is classified:

| answer | SendError kind | code |
|---|---|---|
| 200, 409 ALREADY_EXISTS | (accepted) | |
| 404 NOT_FOUND: the phone cannot get RCS from this agent | permanent | ``rbm:404`` (:data:`NOT_RCS_CAPABLE_CODE`): the dispatcher's cue for ``fallbackSms`` |
| 400 INVALID_ARGUMENT (e.g. the device lacks a feature used) | permanent, Google's message | ``rbm:400`` |
| 401/403 | after one resend with a fresh token: retry, ``auth_retry_after_seconds`` | ``rbm:401``/``rbm:403`` |
| 429 RESOURCE_EXHAUSTED | throttled (Retry-After when given) | ``rbm:429`` |
| 408, 5xx | retry | ``rbm:<status>`` |
| no answer, a broken connection | retry | ``rbm:network`` |
| no access token: the token URI refused (retry, ``auth_retry_after_seconds``) or did not answer (retry) | retry | ``rbm:token`` |
| any other status | permanent | ``rbm:<status>`` |

Statuses other than 404 and 409 are classified as for every HTTP provider, and Retry-After is read,
by :mod:`partner_gateway.channels.http_errors`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx

from partner_gateway.channels.base import (
    Accepted,
    AlwaysAccepting,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SendError,
    SendErrorKind,
    SubmittedPart,
    WebhookRoute,
    webhook_problem,
)
from partner_gateway.channels.http_errors import HttpRefusal, refusal_for_status, retry_after_seconds
from partner_gateway.channels.rcs.auth import AccessTokens, TokenError
from partner_gateway.channels.rcs.content import ContentError, agent_message, rbm_message_id
from partner_gateway.channels.rcs.events import (
    PROVIDER_NAME,
    Handshake,
    WebhookRejected,
    event_reports,
    read_webhook,
    user_message,
)
from partner_gateway.channels.rcs.settings import RbmSettings
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms

logger = logging.getLogger(__name__)

NOT_RCS_CAPABLE_CODE: Final = "rbm:404"
WEBHOOK_PATH: Final = "rcs"
ACCEPTED_DESCRIPTION: Final = "Accepted by RCS Business Messaging"
_JSON: Final = "application/json"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")
RevokeOutcome = Literal["revoked", "not_found"]


class RbmProvider(AlwaysAccepting):
    """One RBM agent. ``transport`` replaces the network (tests pass an ``httpx.MockTransport``)."""

    name: str = PROVIDER_NAME
    channel: Channel = Channel.RCS
    # A hand-over left unanswered by a crash is resent (dispatch/unanswered.py): its messageId is
    # the same UUID every time, and RBM ignores a second one (409 ALREADY_EXISTS counts as accepted).
    resend_is_safe: bool = True

    def __init__(self, settings: RbmSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._client = self._new_client()
        self._tokens = AccessTokens(settings, self._client)
        self._sink: ReportSink | None = None
        self.events_received = 0

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=self.settings.request_timeout_seconds)

    @property
    def tokens(self) -> AccessTokens:
        return self._tokens

    async def start(self, sink: ReportSink) -> None:
        self._sink = sink
        if self._client.is_closed:
            self._client = self._new_client()
            self._tokens = AccessTokens(self.settings, self._client)

    async def stop(self) -> None:
        await self._client.aclose()

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return (WebhookRoute("POST", WEBHOOK_PATH, self.handle_webhook),)

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        ttl = (message.expires_at - now_ms()) // 1000
        fallback = message.content.get("fallbackSms") or {}
        if isinstance(fallback.get("afterSeconds"), int):
            # The partner wants the SMS if RCS has not delivered by then: RBM revokes at the ttl
            # and says TTL_EXPIRATION_REVOKED, the fallback's cue (dispatch/fallback.py).
            ttl = min(ttl, fallback["afterSeconds"] - (now_ms() - message.created_at) // 1000)
        try:
            body = agent_message(message.content, ttl)
        except ContentError as error:
            raise self._error(
                "permanent", f"The content cannot be sent over RCS: {error}", "gw:invalid-content"
            ) from None
        rbm_id = rbm_message_id(message.message_id)
        response = await self._call(
            "POST",
            f"{self.settings.base_url}/v1/phones/{quote(message.to, safe='+')}/agentMessages",
            {"messageId": rbm_id, "agentId": self.settings.agent_id},
            body,
            before_write=lambda: guard.before_write(message.message_id),
        )
        part = (SubmittedPart(1, 1, rbm_id, rbm_id),)
        if 200 <= response.status_code < 300:
            return Accepted(self.name, part, ACCEPTED_DESCRIPTION, "accepted")
        if response.status_code == 409:
            # An earlier attempt got through (its answer was lost): RBM keeps the first and says so.
            return Accepted(self.name, part, ACCEPTED_DESCRIPTION, "already_exists")
        if response.status_code == 404:
            raise self._error("permanent", "Not reachable over RCS", NOT_RCS_CAPABLE_CODE)
        raise self._refusal(response, message.message_id)

    async def revoke(self, message_id: str, to: str) -> RevokeOutcome:
        """Withdraw an undelivered message (when its validity ends before RBM's ttl does).

        ``revoked``: RBM withdrew it (a DELIVERED may still arrive if it raced the revocation, and is
        believed); ``not_found``: already delivered, or never accepted. Raises SendError otherwise.
        """
        rbm_id = rbm_message_id(message_id)
        response = await self._call(
            "DELETE",
            f"{self.settings.base_url}/v1/phones/{quote(to, safe='+')}/agentMessages/{rbm_id}",
            {"agentId": self.settings.agent_id},
            None,
        )
        if 200 <= response.status_code < 300:
            return "revoked"
        if response.status_code == 404:
            return "not_found"
        raise self._refusal(response, message_id)

    async def _call(
        self,
        method: str,
        url: str,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None,
        *,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """One RBM request with a bearer token; a 401/403 is tried once more with a fresh token."""
        for attempt in (1, 2):
            try:
                token = await self._tokens.get()
            except TokenError as error:
                retry_after = None if error.transient else self.settings.auth_retry_after_seconds
                raise self._error("retry", error.description, "rbm:token", retry_after) from None
            if before_write is not None:
                await before_write()
            try:
                response = await self._client.request(
                    method, url, params=params, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as error:
                # Even when the request may have been written (a timeout waiting for the answer), this
                # is "retry", not "ambiguous": the resend carries the same messageId, and RBM ignores
                # an id the agent already used (or answers 409), so it cannot reach the user twice.
                raise self._error(
                    "retry", f"No answer from RCS Business Messaging: {type(error).__name__}", "rbm:network"
                ) from None
            if response.status_code in (401, 403) and attempt == 1:
                logger.info("RBM answered %d: fetching a new access token", response.status_code)
                self._tokens.invalidate(token)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _refusal(self, response: httpx.Response, message_id: str) -> SendError:
        status = response.status_code
        google_status, text = _google_error(response)
        code = f"rbm:{status}"
        logger.info("RBM refused %s: HTTP %d %s", message_id, status, google_status)
        refusal = refusal_for_status(status)
        if refusal is HttpRefusal.CREDENTIALS:
            logger.warning(
                "RBM refused our credentials (HTTP %d %s) with a fresh token", status, google_status
            )
            return self._error(
                refusal.kind,
                f"RCS Business Messaging refused the agent's credentials ({google_status})",
                code,
                self.settings.auth_retry_after_seconds,
            )
        if refusal is HttpRefusal.THROTTLED:
            return self._error(
                refusal.kind,
                "RCS Business Messaging asked us to slow down",
                code,
                retry_after_seconds(response.headers.get("retry-after")),
            )
        detail = f"RCS Business Messaging refused the message: {text or google_status}"
        return self._error(refusal.kind, detail, code)

    def _error(
        self, kind: SendErrorKind, description: str, code: str, retry_after: float | None = None
    ) -> SendError:
        return SendError(
            kind,
            description,
            code=code,
            retry_after=retry_after,
            provider=self.name,
            channel_unavailable=code == NOT_RCS_CAPABLE_CODE,
        )

    async def handle_webhook(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        """``POST /webhooks/rcs``: the setup handshake, or one signed event (see :mod:`.events`)."""
        try:
            pushed = read_webhook(body, headers, self.settings.webhook_client_token.get_secret_value())
        except WebhookRejected as refused:
            logger.warning("RBM webhook refused (%d): %s", refused.status, refused.reason)
            return _problem(refused.status, refused.reason)
        if isinstance(pushed, Handshake):
            logger.info("RBM webhook handshake answered")
            return 200, pushed.secret.encode(), "text/plain; charset=utf-8"  # sent as given (api/webhooks.py)
        inbound = user_message(pushed, self.settings.agent_id)
        if inbound is not None:
            if self._sink is None:
                return _problem(503, "The RCS provider is not started")
            try:
                await self._sink.receive([inbound])
            except Exception:
                logger.exception("storing an RBM user message failed")
                return _problem(500, "The message could not be stored; deliver it again")
            return 200, b"{}", _JSON
        reports = event_reports(pushed, self.settings.agent_id)
        if reports:
            if self._sink is None:
                return _problem(503, "The RCS provider is not started")
            try:
                await self._sink.record(reports)
            except Exception:
                # Not acknowledged: RBM delivers the event again (with back-off, for up to 7 days).
                logger.exception("recording an RBM event failed")
                return _problem(500, "The event could not be recorded; deliver it again")
            self.events_received += len(reports)
        return 200, b"{}", _JSON


def _google_error(response: httpx.Response) -> tuple[str, str]:
    """Google's error ``status`` (e.g. INVALID_ARGUMENT) and ``message``, made safe to show."""
    try:
        error = response.json().get("error", {})
        status, message = error.get("status"), error.get("message")
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}", ""
    status_text = (
        status if isinstance(status, str) and status.isidentifier() else f"HTTP {response.status_code}"
    )
    message_text = _UNPRINTABLE.sub(" ", message)[:300].strip() if isinstance(message, str) else ""
    return status_text, f"{message_text} ({status_text})" if message_text else ""


_WEBHOOK_PROBLEMS: Final = {
    400: ("webhook-malformed", "Malformed webhook"),
    401: ("webhook-bad-signature", "Bad signature"),
    403: ("webhook-wrong-token", "Wrong client token"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


def _problem(status: int, detail: str) -> tuple[int, bytes, str]:
    slug, title = _WEBHOOK_PROBLEMS.get(status, ("webhook-refused", "Webhook refused"))
    return webhook_problem(status, slug, title, detail)
