"""The RBM simulator: a Litestar app served in the current event loop (an EmbeddedServer), and the events it posts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

import httpx
import jwt
from litestar import Litestar, Request, Response, delete, post
from litestar.params import FromPath

from partner_gateway.channels.rcs.auth import JWT_BEARER_GRANT, RBM_SCOPE
from partner_gateway.channels.rcs.events import sign
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway.simulators.rbm.rules import (
    TTL_PATTERN,
    RbmSimConfig,
    RbmSimScript,
    RbmSimStats,
    check_agent_message,
    fate_for,
)

logger = logging.getLogger("partner_gateway.simulators.rbm")

START_TIMEOUT_SECONDS: Final = 10.0
STOP_TIMEOUT_SECONDS: Final = 5.0


def google_error(status: int, google_status: str, message: str) -> Response[Any]:
    body = {"error": {"code": status, "message": message, "status": google_status}}
    return Response(body, status_code=status, media_type="application/json")


@dataclass(slots=True)
class _Sent:
    phone: str
    ttl_seconds: float | None
    delivered: bool = False
    task: asyncio.Task[None] | None = None


class RbmSimulator:
    """A simulated RBM platform; ``script`` may be changed while it runs, ``stats`` counts."""

    def __init__(self, config: RbmSimConfig, *, script: RbmSimScript | None = None) -> None:
        self.config = config
        self.script = script or RbmSimScript()
        self.stats = RbmSimStats()
        self.webhook_url = config.webhook_url
        self.port: int | None = None
        self._public_key = config.public_key_pem
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._messages: dict[str, _Sent] = {}  # accepted messageId -> what became of it
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: EmbeddedServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._pubsub_ids = 0

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the RBM simulator is not running")
        return f"http://{self.config.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    async def start(self) -> int:
        """Serve on ``config.host``/``config.port``; returns the port bound."""
        if self._server is not None:
            raise RuntimeError("the RBM simulator is already running")
        self._client = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        app = Litestar(route_handlers=self._handlers(), logging_config=None, debug=False)
        self._server = EmbeddedServer(
            app,
            host=self.config.host,
            port=self.config.port,
            name="RBM simulator",
            start_timeout=START_TIMEOUT_SECONDS,
        )
        try:
            self.port = await self._server.start()
        except BaseException:
            await self.stop()
            raise
        return self.port

    async def stop(self) -> None:
        """Cancel pending events, stop serving, close the webhook client (every wait bounded)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_SECONDS)
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def expire_tokens(self) -> None:
        """Forget every access token issued (the next call with one gets 401)."""
        self._tokens.clear()

    async def verify_webhook(self) -> bool:
        """The setup handshake: POST ``{clientToken, secret}``; the webhook must echo the secret."""
        if self._client is None or self.webhook_url is None:
            raise RuntimeError("the RBM simulator is not running or has no webhook_url")
        secret = secrets.token_hex(8)
        body = {"clientToken": self.config.client_token, "secret": secret}
        try:
            response = await self._client.post(self.webhook_url, json=body)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text.strip() == secret

    # -- the API ------------------------------------------------------------------------------------------

    def _handlers(self) -> list[Any]:
        @post("/token")
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            return self._token(parse_qs((await request.body()).decode("utf-8", "replace")))

        @post("/v1/phones/{phone:str}/agentMessages")
        async def create(request: Request[Any, Any, Any], phone: FromPath[str]) -> Response[Any]:
            return await self._create(request, phone)

        @delete("/v1/phones/{phone:str}/agentMessages/{message_id:str}", status_code=200)
        async def revoke(
            request: Request[Any, Any, Any], phone: FromPath[str], message_id: FromPath[str]
        ) -> Response[Any]:
            return self._revoke(request, message_id)

        @post("/simulator/inbound", status_code=202)
        async def inbound(request: Request[Any, Any, Any]) -> Response[Any]:
            # Not Google's: how a script (`partner-gateway simulate mo`) makes a user write in.
            try:
                document = json.loads(await request.body())
                sender, text = str(document["from"]), str(document["text"])
            except (ValueError, KeyError, TypeError):
                return Response({"error": "from and text are required"}, status_code=400)
            message = await self.send_user_message(sender, text)
            return Response({"id": message["messageId"]}, status_code=202)

        return [token, create, revoke, inbound]

    def user_message(self, sender: str, text: str, *, suggestion: bool = False) -> dict[str, Any]:
        """A UserMessage as RBM pushes it: a text, or (`suggestion`) a tapped suggestion's reply."""
        message: dict[str, Any] = {
            "senderPhoneNumber": sender,
            "messageId": "MxUSER" + secrets.token_hex(10),
            "sendTime": format_ms(now_ms()),
            "agentId": self.config.agent_id,
        }
        if suggestion:
            message["suggestionResponse"] = {"postbackData": text.lower(), "text": text, "type": "REPLY"}
        else:
            message["text"] = text
        return message

    async def send_user_message(self, sender: str, text: str, *, suggestion: bool = False) -> dict[str, Any]:
        """Post a user's message to the gateway's webhook as RBM does (signed, retried); returns it."""
        message = self.user_message(sender, text, suggestion=suggestion)
        self.stats.user_messages += 1
        await self._post_event(message)
        return message

    def _token(self, form: Mapping[str, list[str]]) -> Response[Any]:
        self.stats.token_requests += 1
        if form.get("grant_type") != [JWT_BEARER_GRANT]:
            self.stats.token_rejections += 1
            return Response({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(
                (form.get("assertion") or [""])[0],
                self._public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.config.service_account_email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError as error:
            self.stats.token_rejections += 1
            return Response({"error": "invalid_grant", "error_description": str(error)}, status_code=400)
        if RBM_SCOPE not in str(claims.get("scope", "")).split():
            self.stats.token_rejections += 1
            return Response({"error": "invalid_scope"}, status_code=400)
        access_token = "ya29.sim-" + secrets.token_urlsafe(24)
        self._tokens[access_token] = time.monotonic() + self.config.access_token_lifetime_seconds
        self.stats.tokens_issued += 1
        body = {
            "access_token": access_token,
            "expires_in": self.config.access_token_lifetime_seconds,
            "token_type": "Bearer",
        }
        return Response(body, status_code=200)

    def _authorized(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self._tokens.get(token, 0.0) < time.monotonic():
            self.stats.unauthorized += 1
            return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if request.query_params.get("agentId") != self.config.agent_id:
            return google_error(403, "PERMISSION_DENIED", "The caller does not have permission")
        return None

    async def _create(self, request: Request[Any, Any, Any], phone: str) -> Response[Any]:
        self.stats.sends += 1
        refused = self._authorized(request)
        if refused is not None:
            return refused
        message_id = request.query_params.get("messageId", "")
        body: Any = None
        problem: str | None = "messageId must be a UUID"
        with contextlib.suppress(ValueError):
            uuid.UUID(message_id)
            problem = "the body is not JSON"
            body = json.loads(await request.body())
            problem = check_agent_message(body)
        if problem is None and not re.fullmatch(r"\+[1-9]\d{6,14}", phone):
            problem = "the phone number must be in E.164 format"
        if problem is not None:
            self.stats.invalid += 1
            return google_error(400, "INVALID_ARGUMENT", problem)
        if message_id in self._messages:
            self.stats.duplicates += 1
            return google_error(409, "ALREADY_EXISTS", "Requested entity already exists")
        fate = fate_for(phone, self.config.rejection_status)
        if fate.status != 200:
            self.stats.rejected += 1
            return google_error(fate.status, fate.google_status, fate.message)
        self.stats.accepted += 1
        key = (phone, json.dumps(body["contentMessage"], sort_keys=True, ensure_ascii=False))
        self.stats.sends_by_content[key] = self.stats.sends_by_content.get(key, 0) + 1
        ttl = TTL_PATTERN.fullmatch(body.get("ttl", ""))
        sent = _Sent(phone, float(ttl.group(1)) if ttl else None)
        if len(self._messages) >= self.config.max_tracked_messages:
            del self._messages[next(iter(self._messages))]
        self._messages[message_id] = sent
        if fate.events:
            sent.task = self._spawn(self._run_events(message_id, sent, fate.events))
        accepted = {"name": f"phones/{phone}/agentMessages/{message_id}", "sendTime": format_ms(now_ms())}
        return Response({**accepted, **body}, status_code=200)

    def _revoke(self, request: Request[Any, Any, Any], message_id: str) -> Response[Any]:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        sent = self._messages.get(message_id)
        if sent is None or sent.delivered:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        if sent.task is not None:
            sent.task.cancel()
        sent.delivered = True  # withdrawn: nothing more happens to it
        self.stats.revokes += 1
        return Response({}, status_code=200)

    # -- events -------------------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_events(self, message_id: str, sent: _Sent, event_types: tuple[str, ...]) -> None:
        timed: list[tuple[float, str]] = []
        for event_type in event_types:
            if event_type.startswith("TTL_"):
                if sent.ttl_seconds is not None:
                    cap = self.config.ttl_cap_seconds
                    timed.append(
                        (sent.ttl_seconds if cap is None else min(sent.ttl_seconds, cap), event_type)
                    )
            elif event_type == "READ":
                timed.append((self.config.event_delay_seconds + self.config.read_delay_seconds, event_type))
            else:
                timed.append((self.config.event_delay_seconds, event_type))
        timed.sort()
        order = [event_type for _, event_type in timed]
        if self.script.reverse_events:
            order.reverse()
        started = time.monotonic()
        for at, event_type in zip((at for at, _ in timed), order, strict=True):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            if event_type in ("DELIVERED", "READ", "TTL_EXPIRATION_REVOKED"):
                sent.delivered = True  # no longer revocable
            await self._post_event(self._event(message_id, sent.phone, event_type))

    def _event(self, message_id: str, phone: str, event_type: str) -> dict[str, Any]:
        base = {
            "agentId": self.config.agent_id,
            "eventType": event_type,
            "eventId": "Mx" + secrets.token_hex(10),
        }
        base["sendTime"] = format_ms(now_ms())
        if event_type == "IS_TYPING":  # a UserEvent that names no message
            return {"senderPhoneNumber": phone, **base}
        if event_type in ("DELIVERED", "READ"):
            return {"senderPhoneNumber": phone, "messageId": message_id, **base}
        return {"phoneNumber": phone, "messageId": message_id, **base}  # a ServerEvent

    async def _post_event(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(event, ensure_ascii=False).encode()
        self._pubsub_ids += 1
        envelope = {
            "message": {
                "data": base64.b64encode(data).decode("ascii"),
                "messageId": str(self._pubsub_ids),
                "publishTime": format_ms(now_ms()),
            },
            "subscription": f"projects/rbm-{self.config.agent_id}/subscriptions/rbm-agent-subscription",
        }
        key = self.config.client_token
        if self.script.bad_signatures > 0:
            self.script.bad_signatures -= 1
            key = "not-" + hashlib.sha256(key.encode()).hexdigest()
        headers = {"X-Goog-Signature": sign(key, data), "Content-Type": "application/json"}
        body = json.dumps(envelope).encode()
        for _ in range(2 if self.script.duplicate_events else 1):
            await self._deliver(body, headers)

    async def _deliver(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._client is None or self.webhook_url is None:
            self.stats.events_failed += 1
            return
        for attempt in range(1, self.config.webhook_attempts + 1):
            self.stats.webhook_attempts += 1
            try:
                response = await self._client.post(self.webhook_url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    self.stats.events_posted += 1
                    return
                logger.info("RBM simulator: webhook answered %d (attempt %d)", response.status_code, attempt)
            except httpx.HTTPError as error:
                logger.info(
                    "RBM simulator: webhook unreachable (%s, attempt %d)", type(error).__name__, attempt
                )
            if attempt < self.config.webhook_attempts:
                await asyncio.sleep(self.config.webhook_retry_delay_seconds)
        self.stats.events_failed += 1
