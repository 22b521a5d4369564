"""A WhatsApp Business Cloud API simulator: the Graph API's send endpoint and Meta's signed status
webhooks, over real HTTP on loopback (a Litestar app, an EmbeddedServer in the caller's event loop).

`POST /{version}/{phone_number_id}/messages` checks the Bearer token (401, Graph error 190), the phone
number id and the body's shape (400, Graph error 100), answers 200 with a `wamid.` id, then posts
status webhooks to `webhook_url` the way Meta does: a `whatsapp_business_account` body, compact JSON
with non-ASCII escaped, signed `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`,
`biz_opaque_callback_data` echoed, retried with doubling delays while the receiver answers non-2xx or
cannot be reached (Meta retries for days; the simulator `webhook_attempts` times).

A message's fate comes from the last two digits of its destination (SPEC §6):

| digits | answer to the send | status webhooks, in this order | gateway status |
|---|---|---|---|
| 00-89, 97-99, fewer than two | 200 | sent, delivered, and read when the last digit is even | DELIVERED |
| 90 | 400, error 100 "(#100) Invalid parameter" (what Meta answers an invalid `to`) | none | ERROR |
| 91 | 200 | failed 131026 "Message undeliverable", no `sent` (a number not on WhatsApp) | ERROR |
| 92 | 200 | sent, failed 410 "Message expired" (WhatsApp has no expired status) | EXPIRED |
| 93 | 200 | sent | RECEIVED |
| 94 | 200 | none | SENT |
| 95 | 200 | `warning`, a status value Meta does not document | UNKNOWN |
| 96 | 200 | failed 131047 (24-hour window) for a text, 131049 (healthy ecosystem) for a template | ERROR |

Misbehaviour on request: see :class:`WhatsAppScript`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from litestar import Litestar, Request, Response, post

from partner_gateway.embedded_server import EmbeddedServer

logger = logging.getLogger("partner_gateway.simulators.whatsapp")

START_TIMEOUT_SECONDS: Final = 5.0
_ERRORS_HREF: Final = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
# Graph error code -> (title, details) as the failed-status webhooks carry them.
FAILURES: Final[dict[int, tuple[str, str]]] = {
    131026: ("Message undeliverable", "Message Undeliverable."),
    410: ("Message expired", "Message failed to send during its Time To Live (TTL) duration."),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied "
        "to this number.",
    ),
    131049: (
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    ),
}
Event = tuple[str, int | None]  # a status value and its error code


def fate_for(to: str, *, template: bool) -> tuple[bool, tuple[Event, ...]]:
    """(accepted at submission, the statuses that follow) for a destination; see the module table."""
    digits = "".join(ch for ch in to if ch.isdigit())
    tail = int(digits[-2:]) if len(digits) >= 2 else 0
    fates: dict[int, tuple[Event, ...]] = {
        91: (("failed", 131026),),
        92: (("sent", None), ("failed", 410)),
        93: (("sent", None),),
        94: (),
        95: (("warning", None),),
        96: (("failed", 131049 if template else 131047),),
    }
    if tail == 90:
        return False, ()
    default = (("sent", None), ("delivered", None)) + ((("read", None),) if tail % 2 == 0 else ())
    return True, fates.get(tail, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatsAppSimulatorConfig:
    """Settings of one simulated business phone number. Times are seconds."""

    access_token: str = "sim-access-token"  # noqa: S105 - a loopback simulator's default
    app_secret: str = "sim-app-secret"  # noqa: S105
    phone_number_id: str = "109876543210987"
    webhook_url: str | None = None  # the gateway's /webhooks/whatsapp; None = post no webhooks
    status_delay_seconds: float = 0.2  # between a send's answer and each of its status webhooks
    seed: int | None = None  # wamids; None = different every run
    host: str = "127.0.0.1"
    port: int = 0  # 0 = an ephemeral port; start() returns the one bound
    business_account_id: str = "102030405060708"
    display_phone_number: str = "15550001234"
    webhook_attempts: int = 4  # posts of one webhook before giving up (stats.webhooks_failed)
    webhook_retry_seconds: float = 0.5  # before the first repost; doubled each time
    webhook_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535 or self.webhook_attempts < 1:
            raise ValueError("port must be 0-65535 and webhook_attempts at least 1")
        if min(self.status_delay_seconds, self.webhook_retry_seconds, self.webhook_timeout_seconds) < 0:
            raise ValueError("delays and timeouts cannot be negative")


@dataclass(slots=True, kw_only=True)
class WhatsAppScript:
    """Misbehaviour on demand; change the fields while the simulator runs. Counters count down."""

    out_of_order: bool = False  # a message's statuses are posted last first (read before delivered, ...)
    duplicate_webhooks: bool = False  # every webhook is posted twice, byte for byte
    bad_signature: bool = False  # webhooks are signed with a wrong key (and so reposted until given up)
    batch_statuses: bool = False  # all of a message's statuses in one webhook, after the last delay
    read_without_delivered: bool = False  # no `delivered` before a `read` (Meta: read implies it)
    throttle_sends: int = 0  # the next N sends get 429, Graph error 130429
    fail_sends: int = 0  # the next N sends get 500, Graph error 131000
    answer_delay_seconds: float = 0.0  # accept, then wait this long before answering a send


@dataclass(slots=True, kw_only=True)
class WhatsAppSimulatorStats:
    """Counters since start. `duplicates` counts accepted sends whose (to, body) was accepted before."""

    sends: int = 0  # every POST to the messages endpoint
    accepted: int = 0
    rejected: int = 0  # answered with a Graph error (401 included)
    unauthorized: int = 0
    duplicates: int = 0
    sends_by_content: dict[tuple[str, str], int] = field(default_factory=dict)
    webhook_attempts: int = 0  # every POST of a webhook, reposts and duplicates included
    webhooks_posted: int = 0  # answered 2xx
    webhooks_failed: int = 0  # given up after webhook_attempts
    inbound: int = 0  # user messages posted (send_inbound, POST /simulator/inbound)


def graph_error(code: int, message: str, *, subcode: int | None = None, details: str | None = None) -> bytes:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "A" + hashlib.sha256(message.encode()).hexdigest()[:22]
    return json.dumps({"error": error}).encode()


def _shape_problem(document: object) -> str | None:
    """What is wrong with a send body, or None (the checks Meta makes that a gateway could fail)."""
    if not isinstance(document, dict) or document.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    to = document.get("to")
    if not (isinstance(to, str) and 6 <= len(to.removeprefix("+")) <= 15 and to.removeprefix("+").isdigit()):
        return "Invalid parameter"
    if document.get("recipient_type", "individual") != "individual":
        return "recipient_type must be individual"
    kind = document.get("type", "text")
    if kind == "text":
        text = document.get("text")
        body = text.get("body") if isinstance(text, dict) else None
        return None if isinstance(body, str) and 0 < len(body) <= 4096 else "text.body is required"
    if kind != "template":
        return f"Unsupported message type {kind!r}"
    template = document.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        return "template.name is required"
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return "template.language.code is required"
    components = template.get("components", [])
    for component in components if isinstance(components, list) else [None]:
        parameters = component.get("parameters", []) if isinstance(component, dict) else None
        if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in parameters
        ):
            return "Parameter 'text' is mandatory for component parameter type 'text'"
    return None


def _content_key(document: dict[str, Any]) -> tuple[str, str]:
    to = str(document["to"]).removeprefix("+")
    if document.get("type", "text") == "text":
        return to, str(document["text"]["body"])
    return to, "template:" + json.dumps(document["template"], sort_keys=True)


class WhatsAppSimulator:
    """A simulated Cloud API phone number. `script` may be changed while it runs; `stats` counts."""

    def __init__(
        self, config: WhatsAppSimulatorConfig | None = None, *, script: WhatsAppScript | None = None
    ) -> None:
        self.config = config or WhatsAppSimulatorConfig()
        self.script = script or WhatsAppScript()
        self.stats = WhatsAppSimulatorStats()
        self.webhook_url = self.config.webhook_url  # may be set once the gateway's port is known
        self.port: int | None = None
        self._bearer = f"Bearer {self.config.access_token}".encode()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - ids of a test double, not secrets
        self._server: EmbeddedServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """What WhatsAppSettings.base_url should be to send here."""
        if self.port is None:
            raise RuntimeError("the WhatsApp simulator is not running")
        return f"http://{self.config.host}:{self.port}"

    @property
    def pending_webhooks(self) -> int:
        return len(self._tasks)

    async def start(self) -> int:
        """Serve on config.host/config.port; returns the port bound."""
        if self._server is not None:
            raise RuntimeError("the WhatsApp simulator is already running")
        app = Litestar(route_handlers=self._route(), openapi_config=None, logging_config=None)
        # A port in use is an OSError; its requests may show in the host's access log (no secrets).
        self._server = EmbeddedServer(
            app, host=self.config.host, port=self.config.port, name="WhatsApp simulator"
        )
        self._client = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        try:
            self.port = await self._server.start()
        except BaseException:
            await self.stop()
            raise
        logger.info("WhatsApp simulator on %s", self.base_url)
        return self.port

    async def stop(self) -> None:
        """Stop serving and drop the webhooks not yet posted."""
        server, self._server = self._server, None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=START_TIMEOUT_SECONDS)
        if server is not None:
            await server.stop()
        if self._client is not None:
            await self._client.aclose()
        self._client, self.port = None, None

    async def verify_webhook(self, verify_token: str) -> bool:
        """Meta's subscription handshake against webhook_url: True when the challenge comes back."""
        if self._client is None or self.webhook_url is None:
            raise RuntimeError("the WhatsApp simulator is not running or has no webhook_url")
        challenge = str(self._rng.randrange(10**9, 10**10))
        query = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
        request = httpx.Request("GET", self.webhook_url, params=query)
        request.extensions["timeout"] = httpx.Timeout(self.config.webhook_timeout_seconds).as_dict()
        # Straight to a transport: the client's INFO line would log the verify token in the URL.
        async with httpx.AsyncHTTPTransport() as transport:
            response = await transport.handle_async_request(request)
            body = await response.aread()
        return response.status_code == 200 and body == challenge.encode()

    def _route(self) -> Any:
        @post("/{version:str}/{phone_number_id:str}/messages", status_code=200)
        async def messages(request: Request[Any, Any, Any]) -> Response[bytes]:
            authorization = request.headers.get("authorization", "")
            phone_number_id = str(request.path_params["phone_number_id"])
            status, body = await self.on_send(authorization, phone_number_id, await request.body())
            return Response(body, status_code=status, media_type="application/json")

        @post("/simulator/inbound", status_code=202)
        async def inbound(request: Request[Any, Any, Any]) -> Response[bytes]:
            # Not Meta's: how a script (`partner-gateway simulate mo`) makes a user write in.
            try:
                document = json.loads(await request.body())
                sender, text = str(document["from"]), str(document["text"])
                kind = str(document.get("type") or "text")
            except (ValueError, KeyError, TypeError):
                return Response(
                    b'{"error":"from and text are required"}', status_code=400, media_type="application/json"
                )
            message = await self.send_inbound(sender, text, kind=kind)
            return Response(
                json.dumps({"id": message["id"]}).encode(), status_code=202, media_type="application/json"
            )

        return [messages, inbound]

    async def on_send(self, authorization: str, phone_number_id: str, raw: bytes) -> tuple[int, bytes]:
        """Answer one send request: (HTTP status, body)."""
        self.stats.sends += 1
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        refusal = self._refusal(authorization, phone_number_id, document)
        if refusal is not None or not isinstance(document, dict):
            self.stats.rejected += 1
            return refusal or (400, graph_error(100, "(#100) Invalid parameter"))
        stats, script = self.stats, self.script
        template = document.get("type") == "template"
        _, events = fate_for(document["to"], template=template)
        key = _content_key(document)
        stats.duplicates += key in stats.sends_by_content
        stats.sends_by_content[key] = stats.sends_by_content.get(key, 0) + 1
        stats.accepted += 1
        wamid = "wamid.HBgL" + base64.b64encode(self._rng.randbytes(30)).decode()
        callback = document.get("biz_opaque_callback_data")
        callback = callback if isinstance(callback, str) else None
        statuses = self._statuses(wamid, key[0], callback, events, template)
        if statuses:
            task = asyncio.create_task(self._deliver(statuses))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if script.answer_delay_seconds > 0:
            await asyncio.sleep(script.answer_delay_seconds)
        answer: dict[str, Any] = {"id": wamid} | ({"message_status": "accepted"} if template else {})
        contacts = [{"input": document["to"], "wa_id": key[0]}]
        reply = {"messaging_product": "whatsapp", "contacts": contacts, "messages": [answer]}
        return 200, json.dumps(reply).encode()

    def _refusal(
        self, authorization: str, phone_number_id: str, document: object
    ) -> tuple[int, bytes] | None:
        """The Graph error a send gets, if any, checked in Meta's order."""
        script = self.script
        if not hmac.compare_digest(authorization.encode("utf-8", "replace"), self._bearer):
            self.stats.unauthorized += 1
            return 401, graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        if phone_number_id != self.config.phone_number_id:
            message = f"Unsupported post request. Object with ID '{phone_number_id}' does not exist"
            return 400, graph_error(100, message, subcode=33)
        if script.throttle_sends > 0:
            script.throttle_sends -= 1
            return 429, graph_error(130429, "(#130429) Rate limit hit", details="Cloud API throughput")
        if script.fail_sends > 0:
            script.fail_sends -= 1
            return 500, graph_error(131000, "(#131000) Something went wrong", details="Something went wrong")
        problem = _shape_problem(document)
        if problem is None and isinstance(document, dict) and not fate_for(document["to"], template=False)[0]:
            problem = "Invalid parameter"  # fate 90: what Meta answers a `to` that is not a valid number
        return (
            None if problem is None else (400, graph_error(100, "(#100) Invalid parameter", details=problem))
        )

    def _statuses(
        self, wamid: str, recipient: str, callback: str | None, events: tuple[Event, ...], template: bool
    ) -> list[dict[str, Any]]:
        if self.script.read_without_delivered and any(status == "read" for status, _ in events):
            events = tuple(event for event in events if event[0] != "delivered")
        now = int(time.time())
        category = "utility" if template else "service"
        conversation = hashlib.sha256(wamid.encode()).hexdigest()[:32]
        statuses = []
        for number, (status, code) in enumerate(events):
            stamp = now + int(self.config.status_delay_seconds * (number + 1))
            item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(stamp)}
            item["recipient_id"] = recipient
            if callback is not None:
                item["biz_opaque_callback_data"] = callback
            if status in ("sent", "delivered"):
                item["conversation"] = {"id": conversation, "origin": {"type": category}}
                item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category}
            if code is not None:
                title, details = FAILURES[code]
                error = {"code": code, "title": title, "message": title, "error_data": {"details": details}}
                item["errors"] = [error | {"href": _ERRORS_HREF}]
            statuses.append(item)
        return statuses[::-1] if self.script.out_of_order else statuses

    async def _deliver(self, statuses: list[dict[str, Any]]) -> None:
        delay = self.config.status_delay_seconds
        if self.script.batch_statuses:
            await asyncio.sleep(delay * len(statuses))
            await self._post(statuses)
            return
        for status in statuses:
            await asyncio.sleep(delay)
            await self._post([status])

    def webhook_body(
        self, statuses: list[dict[str, Any]], *, messages: list[dict[str, Any]] | None = None
    ) -> bytes:
        """A status webhook (or, with `messages`, an inbound one) as Meta serialises it: compact
        JSON, non-ASCII escaped."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.config.display_phone_number,
                "phone_number_id": self.config.phone_number_id,
            },
        }
        if messages is not None:
            value["contacts"] = [
                {"profile": {"name": "Simulated user"}, "wa_id": message["from"]} for message in messages
            ]
            value["messages"] = messages
        else:
            value["statuses"] = statuses
        entry = {"id": self.config.business_account_id, "changes": [{"value": value, "field": "messages"}]}
        document = {"object": "whatsapp_business_account", "entry": [entry]}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()

    def inbound_message(self, sender: str, text: str, *, kind: str = "text") -> dict[str, Any]:
        """A user's message as Meta's `messages[]` item: a text, or a media `kind` with `text`
        as its caption."""
        wamid = "wamid.SIM" + base64.b32encode(self._rng.randbytes(15)).decode().rstrip("=")
        message: dict[str, Any] = {
            "from": "".join(ch for ch in sender if ch.isdigit()),
            "id": wamid,
            "timestamp": str(int(time.time())),
            "type": kind,
        }
        if kind == "text":
            message["text"] = {"body": text}
        else:
            message[kind] = {
                "caption": text,
                "mime_type": "image/jpeg",
                "id": str(self._rng.randrange(10**15)),
            }
        return message

    async def send_inbound(self, sender: str, text: str, *, kind: str = "text") -> dict[str, Any]:
        """Post a user's message to the gateway's webhook as Meta does (signed, retried); returns
        the message as posted (its `id` is the wamid)."""
        message = self.inbound_message(sender, text, kind=kind)
        self.stats.inbound += 1
        await self._post([], messages=[message])
        return message

    async def _post(
        self, statuses: list[dict[str, Any]], *, messages: list[dict[str, Any]] | None = None
    ) -> None:
        body = self.webhook_body(statuses, messages=messages)
        key = (self.config.app_secret + ("-wrong" if self.script.bad_signature else "")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
            "User-Agent": "facebookexternalua",
        }
        for _ in range(2 if self.script.duplicate_webhooks else 1):
            await self._post_once(body, headers)

    async def _post_once(self, body: bytes, headers: dict[str, str]) -> None:
        delay = self.config.webhook_retry_seconds
        for attempt in range(1, self.config.webhook_attempts + 1):
            if self.webhook_url is None or self._client is None:
                return
            self.stats.webhook_attempts += 1
            try:
                response = await self._client.post(self.webhook_url, content=body, headers=headers)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            else:
                if response.is_success:
                    self.stats.webhooks_posted += 1
                    return
                outcome = f"HTTP {response.status_code}"
            if attempt < self.config.webhook_attempts:
                logger.info("WhatsApp simulator: webhook attempt %d failed (%s), retrying", attempt, outcome)
                await asyncio.sleep(delay)
                delay *= 2
        self.stats.webhooks_failed += 1
        logger.warning("WhatsApp simulator: webhook given up after %d attempts", self.config.webhook_attempts)
