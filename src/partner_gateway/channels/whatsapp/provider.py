"""WhatsApp Business Cloud API: the provider that sends over the Graph API and answers Meta's webhooks.

Sending: `POST {base_url}/{api_version}/{phone_number_id}/messages` with a Bearer token; a 200 names
the message's `wamid`, the key of every later status webhook, and our own id goes along as
`biz_opaque_callback_data`, which Meta echoes. The Cloud API has no idempotency key, so a request that
may have reached Meta without an answer (a timeout, a connection lost after writing) is `ambiguous`;
only a failure to connect is a plain `retry`. How each answer is classified:

| answer | SendError kind | code |
|---|---|---|
| 2xx naming a wamid | (accepted) | |
| 2xx without a usable wamid | ambiguous | |
| a Graph error whose code errors.py knows | that code's rule (errors.SEND_ERRORS) | ``whatsapp:<code>`` |
| else 401/403 | retry after 300 s: the access token is refused | ``whatsapp:<code>``, else ``whatsapp:http-<status>`` |
| else 429 | throttled (1 s) | as above |
| else 408, 5xx | retry | as above |
| else any other status | permanent | as above |
| could not connect | retry | |
| written, then no answer (a timeout, a connection lost) | ambiguous | |

The statuses are classified as for every HTTP provider (channels/http_errors.py); a Retry-After
header that asks for a delay (read there too) replaces the rule's.

Webhooks (`/webhooks/whatsapp`): GET answers the subscription handshake; POST is believed only with a
valid `X-Hub-Signature-256` over the raw body, and its statuses become StatusReports (webhooks.py).
The token, app secret and verify token never reach a log line or a description.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from partner_gateway.channels.base import (
    Accepted,
    AlwaysAccepting,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SendError,
    SubmittedPart,
    WebhookRoute,
    webhook_problem,
)
from partner_gateway.channels.http_errors import retry_after_seconds
from partner_gateway.channels.whatsapp.errors import rule_for
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.channels.whatsapp.webhooks import (
    MAX_DESCRIPTION,
    PROVIDER,
    graph_code,
    parse_inbound,
    parse_statuses,
    signature_matches,
)
from partner_gateway.domain import json_bounds
from partner_gateway.domain.json_bounds import WEBHOOK_BOUNDS, JsonOutOfBounds
from partner_gateway.domain.statuses import Channel

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "x-hub-signature-256"
_MAX_WAMID: Final = 100  # message_parts.provider_key
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The Graph API body for `message`; SendError `permanent` when its content is not sendable."""
    content = message.content
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "".join(ch for ch in message.to if ch.isdigit()),
    }
    text, template = content.get("text"), content.get("template")
    if isinstance(text, str) and text and template is None:
        payload |= {"type": "text", "text": {"body": text}}
    elif isinstance(template, Mapping) and text is None:
        name, language = template.get("name"), template.get("language")
        parameters = template.get("parameters") or []
        if not (isinstance(name, str) and name and isinstance(language, str) and language):
            raise _invalid("a template needs a name and a language")
        if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
            raise _invalid("template parameters must be strings")
        body: dict[str, Any] = {"name": name, "language": {"code": language}}
        if parameters:
            body["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
            ]
        payload |= {"type": "template", "template": body}
    else:
        raise _invalid("a WhatsApp message needs either a text or a template")
    payload["biz_opaque_callback_data"] = message.message_id
    return payload


def _invalid(reason: str) -> SendError:
    return SendError(
        "permanent", f"The message cannot be sent: {reason}", code="gw:invalid-content", provider=PROVIDER
    )


def _json(status: int, body: Mapping[str, Any]) -> tuple[int, bytes, str]:
    return status, json.dumps(body).encode(), "application/json"


class WhatsAppProvider(AlwaysAccepting):
    """The WhatsApp channel over one business phone number of the Cloud API."""

    name = PROVIDER
    channel = Channel.WHATSAPP

    def __init__(
        self, settings: WhatsAppSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sink: ReportSink | None = None
        self._app_secret = settings.app_secret.get_secret_value().encode()
        self._secrets = tuple(
            secret.get_secret_value()
            for secret in (settings.access_token, settings.app_secret, settings.verify_token)
        )

    async def start(self, sink: ReportSink) -> None:
        self._sink = sink
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self.settings.request_timeout_seconds,
                headers={"User-Agent": "partner-gateway"},
            )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return (
            WebhookRoute("GET", PROVIDER, self.handle_verification),
            WebhookRoute("POST", PROVIDER, self.handle_webhook),
        )

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        client = self._client
        if client is None:
            raise SendError("retry", "The WhatsApp provider is not started", provider=PROVIDER)
        payload = build_payload(message)
        headers = {"Authorization": f"Bearer {self.settings.access_token.get_secret_value()}"}
        await guard.before_write(message.message_id)
        try:
            response = await client.post(self.settings.messages_url, json=payload, headers=headers)
        except _NOT_SENT as error:
            logger.info(
                "WhatsApp send of %s: could not connect (%s)", message.message_id, type(error).__name__
            )
            raise SendError(
                "retry", f"Could not connect to WhatsApp ({type(error).__name__})", provider=PROVIDER
            ) from None
        except httpx.TransportError as error:
            logger.warning("WhatsApp send of %s: no answer (%s)", message.message_id, type(error).__name__)
            raise SendError(
                "ambiguous",
                f"No answer from WhatsApp once the request was sent ({type(error).__name__}); "
                "it may have been accepted",
                provider=PROVIDER,
            ) from None
        if response.is_success:
            return self._accepted(message, response)
        raise self._refused(message, response)

    def _accepted(self, message: OutboundMessage, response: httpx.Response) -> Accepted:
        try:
            first = response.json()["messages"][0]
            wamid, state = first["id"], str(first.get("message_status") or "accepted")
        except (ValueError, LookupError, TypeError, AttributeError):
            wamid, state = None, ""
        if not isinstance(wamid, str) or not wamid or len(wamid) > _MAX_WAMID:
            logger.warning(
                "WhatsApp answered %d without a message id for %s", response.status_code, message.message_id
            )
            raise SendError("ambiguous", "WhatsApp answered without a message id", provider=PROVIDER)
        logger.debug("WhatsApp accepted %s as %s", message.message_id, wamid)
        description = "Accepted by WhatsApp" if state == "accepted" else f"Accepted by WhatsApp ({state})"
        return Accepted(PROVIDER, (SubmittedPart(1, 1, wamid, wamid),), description, state[:100])

    def _refused(self, message: OutboundMessage, response: httpx.Response) -> SendError:
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        error = error if isinstance(error, dict) else {}
        code, subcode = graph_code(error.get("code")), graph_code(error.get("error_subcode"))
        rule = rule_for(int(code) if code else None, response.status_code)
        data = error.get("error_data")
        said = (data.get("details") if isinstance(data, dict) else None) or error.get("message")
        said = self._redact(said) if isinstance(said, str) else ""
        label = (
            f"WhatsApp error {code}{'/' + subcode if subcode else ''}"
            if code
            else f"HTTP {response.status_code}"
        )
        description = f"{rule.text} ({label}{': ' + said if said else ''})"
        trace = error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else "-"
        if rule.credentials:
            logger.error(
                "WhatsApp refused our set-up (HTTP %d, code %s, fbtrace_id %s): check the access token setting",
                response.status_code, code, trace,
            )  # fmt: skip
        else:
            logger.warning(
                "WhatsApp send of %s refused: HTTP %d, code %s, %s (fbtrace_id %s)",
                message.message_id, response.status_code, code, rule.kind, trace,
            )  # fmt: skip
        return SendError(
            rule.kind,
            description[:MAX_DESCRIPTION],
            code=f"whatsapp:{code}" if code else f"whatsapp:http-{response.status_code}",
            retry_after=retry_after_seconds(response.headers.get("retry-after")) or rule.retry_after,
            provider=PROVIDER,
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    async def handle_verification(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        """Meta's GET subscription handshake: echo `hub.challenge` when the verify token matches."""
        token = query.get("hub.verify_token", "").encode()
        expected = self.settings.verify_token.get_secret_value().encode()
        if not hmac.compare_digest(token, expected) or query.get("hub.mode") != "subscribe":
            logger.warning("WhatsApp verification handshake refused (wrong mode or verify token)")
            return webhook_problem(
                403, "webhook-wrong-token", "Wrong verify token", "hub.mode or hub.verify_token is wrong"
            )
        challenge = query.get("hub.challenge", "")
        if not challenge:
            return webhook_problem(400, "webhook-malformed", "Malformed webhook", "hub.challenge is missing")
        logger.info("WhatsApp verification handshake answered")
        return 200, challenge.encode(), "text/plain"

    async def handle_webhook(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[int, bytes, str]:
        """A signed webhook: 401 unless the signature holds (nothing changes), 400 if the body is not
        JSON, 500 if recording failed (Meta retries), else 200 once its statuses are recorded."""
        header = headers.get(SIGNATURE_HEADER)
        if not signature_matches(self._app_secret, body, header):
            logger.warning(
                "WhatsApp webhook refused: %s X-Hub-Signature-256 (%d bytes)",
                "bad" if header else "no",
                len(body),
            )
            return webhook_problem(
                401,
                "webhook-bad-signature",
                "Bad signature",
                "X-Hub-Signature-256 is missing or does not match",
            )
        try:
            json_bounds.check(body, WEBHOOK_BOUNDS)  # the API checked too; here for any other caller
            document = json.loads(body)
        except JsonOutOfBounds as out:
            logger.warning("WhatsApp webhook refused: %s", out)
            return webhook_problem(400, "webhook-malformed", "Malformed webhook", str(out))
        except ValueError:
            logger.warning("WhatsApp webhook refused: the body is not JSON (%d bytes)", len(body))
            return webhook_problem(400, "webhook-malformed", "Malformed webhook", "The body is not JSON")
        if not isinstance(document, dict):
            return webhook_problem(
                400, "webhook-malformed", "Malformed webhook", "The body is not a JSON object"
            )
        if document.get("object") != "whatsapp_business_account":
            logger.info("WhatsApp webhook for another object ignored: %.40r", document.get("object"))
            return _json(200, {"status": "ok"})
        reports = parse_statuses(document, self.settings.phone_number_id)
        if reports:
            if self._sink is None:
                return webhook_problem(
                    503, "unavailable", "Service unavailable", "The WhatsApp provider is not started"
                )
            try:
                await self._sink.record(reports)
            except Exception:
                logger.exception(
                    "WhatsApp webhook: could not record %d statuses; Meta will retry", len(reports)
                )
                return webhook_problem(
                    500,
                    "internal-error",
                    "Internal error",
                    "The statuses could not be recorded; deliver them again",
                )
        inbound = parse_inbound(document, self.settings.phone_number_id)
        if inbound:
            if self._sink is None:
                return webhook_problem(
                    503, "unavailable", "Service unavailable", "The WhatsApp provider is not started"
                )
            try:
                await self._sink.receive(inbound)
            except Exception:
                logger.exception(
                    "WhatsApp webhook: could not store %d inbound messages; Meta will retry", len(inbound)
                )
                return webhook_problem(
                    500,
                    "internal-error",
                    "Internal error",
                    "The messages could not be stored; deliver them again",
                )
        return _json(200, {"status": "ok"})
