"""Settings: one typed model read from `PARTNER_GATEWAY_*` environment variables.

Every setting is documented in docs/configuration.md; defaults give the embedded gateway
(SQLite in the user's data directory, built-in simulators, 127.0.0.1:8080).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from partner_gateway.channels.rcs.settings import RbmSettings
from partner_gateway.channels.smpp.settings import SmppCarrier, SmsRoute
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.domain.inbound import DEFAULT_OPT_IN_KEYWORDS, DEFAULT_OPT_OUT_KEYWORDS
from partner_gateway.domain.rate_limits import Limit, Traffic
from partner_gateway.domain.routing import RouteError, RouteTable

ENV_PREFIX = "PARTNER_GATEWAY_"


def default_data_dir() -> Path:
    """The embedded store's folder: the user's data directory (XDG), the same whichever folder a
    command runs from, so `serve` and `company create` find one store."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "partner-gateway"


# The URL forms operators and libpq-based tools write, and the driver each store runs on.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalize_database_url(value: str) -> str:
    """`sqlite:///path/gateway.db`, `postgresql://user@host/db`, `postgres://...` and SQLAlchemy's
    driver forms, as the URL of the driver the store runs on (aiosqlite, asyncpg); libpq's
    `sslmode` becomes asyncpg's `ssl`. Anything else is a ValueError saying what is accepted."""
    try:
        url: URL = make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a database URL; use sqlite:///path/gateway.db or postgresql://user@host/db"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"{url.drivername}:// is not a store the gateway runs on; use sqlite:///path/gateway.db "
            "or postgresql://user@host/db"
        )
    url = url.set(drivername=driver)
    if driver.startswith("postgresql") and "sslmode" in url.query:
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    if driver.startswith("sqlite") and not url.database:
        raise ValueError("names no file; use sqlite:///path/gateway.db")
    return url.render_as_string(hide_password=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded SQLite store lives (default: $XDG_DATA_HOME/partner-gateway, "
        "else ~/.local/share/partner-gateway).",
    )
    database_url: str | None = Field(
        None,
        description="URL of the store; default: SQLite in data_dir. sqlite:///path/gateway.db, "
        "postgresql://user@host/db (or postgres://, or SQLAlchemy's +aiosqlite/+asyncpg forms).",
    )
    amqp_url: SecretStr | None = Field(
        None,
        description="RabbitMQ URL (amqp://user:pass@host/vhost). Set: due work is published to "
        "durable quorum queues and consumed by worker processes anywhere; unset: each worker "
        "claims work from the store itself.",
    )
    role: Literal["all", "api", "worker"] = Field(
        "all", description="What this process runs: the API, the delivery workers, or both."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP API listens on.")
    ops_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Where a worker process answers /health and /ready (an API process answers "
        "them on its own port). Unset: a worker listens on no port.",
    )
    public_base_url: str | None = Field(
        None, description="Base URL partners reach us at, for Location and Link headers; default: relative."
    )
    http_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn",
        description="The partner API's HTTP server: uvicorn with our protocol layer (api/server.py), "
        "or granian (api/granian_server.py; docs/performance.md says what it does not answer as the "
        "SPEC asks).",
    )
    max_request_target_bytes: int = Field(
        65_535, ge=65_523, le=1_048_576, description="Longest request target served; longer gets 414."
    )
    keep_alive_seconds: float = Field(
        75,
        gt=0,
        description="How long an idle partner connection is kept open. Longer than the clients' "
        "and load balancers' own idle timeouts (httpx 5 s, AWS ALB 60 s), so the client side closes "
        "first and never sends a request into a connection we are closing.",
    )
    api_key_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a verified API key is trusted without asking the store "
        "again: the longest a revoked key still works in a running API process. 0: no cache.",
    )
    api_key_cache_size: int = Field(10_000, ge=0, description="Most verified keys one process remembers.")
    rate_limit_enabled: bool = Field(
        True,
        description="Limit each company's requests (SPEC §2), sends and reads apart; off: no limit, "
        "no RateLimit headers.",
    )
    rate_limit_sends_per_second: float = Field(
        100, gt=0, le=1_000_000, description="A company's sends per second, unless set for it."
    )
    rate_limit_sends_burst: int | None = Field(
        None, ge=1, le=100_000_000, description="Sends a company may make at once; default: 2 s worth."
    )
    rate_limit_reads_per_second: float = Field(
        1000, gt=0, le=1_000_000, description="A company's reads per second, unless set for it."
    )
    rate_limit_reads_burst: int | None = Field(
        None, ge=1, le=100_000_000, description="Reads a company may make at once; default: 2 s worth."
    )
    rate_limit_refresh_seconds: float = Field(
        2.0,
        gt=0,
        le=5,
        description="How often an API process re-reads the companies' own limits: the longest a "
        "change made with `company limits` takes to apply (SPEC §2: at most 5 s).",
    )
    rate_limit_sync_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="How often an API process publishes what it admitted and reads what the others "
        "did, when limits are shared.",
    )
    rate_limit_shared: bool | None = Field(
        None,
        description="Share the limits with the other API processes on the store, so a company's "
        "limit is its total. Default: on with PostgreSQL, off with SQLite (one process).",
    )
    max_body_bytes: int = Field(1_048_576, ge=65_536, description="Largest request body; larger gets 413.")
    max_query_ids: int = Field(10_000, ge=10_000, description="Most ids in one POST /messages/status/query.")
    cursor_secret: SecretStr | None = Field(
        None,
        description="Key that signs history cursors; default: a random key kept in the store, "
        "shared by every process on that store.",
    )
    callback_allow_private_networks: bool = Field(
        False,
        description="Allow callback URLs whose host is or resolves to a loopback, private, "
        "link-local or other non-public address (local development and tests). Off: refused, "
        "as SPEC §5 requires.",
    )
    callback_secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts the callback signing secrets in the store (any length; "
        "keep it out of the database's backups); default: a random key kept in the store.",
    )
    console_session_idle_seconds: float = Field(
        1800,
        gt=0,
        description="A partner console session unused this long ends (the browser must sign in again).",
    )
    console_session_max_seconds: float = Field(
        43_200,
        gt=0,
        description="A partner console session ends this long after its sign-in, used or not.",
    )
    console_cookie_secure: bool | None = Field(
        None,
        description="Mark the console's session cookie Secure (sent over HTTPS only). Default: when the "
        "sign-in request came over TLS. Set true behind a TLS-terminating proxy (the gateway then sees "
        "plain HTTP); false never marks it.",
    )
    console_signin_failures: int = Field(
        10,
        ge=1,
        description="Failed console sign-ins one client address may make in 5 minutes in one API process; "
        "more are answered 429 until the window passes. Each failure is also answered after 1 second.",
    )
    callback_timeout_seconds: float = Field(
        10, gt=0, le=60, description="How long a callback attempt waits for the partner's answer."
    )
    callback_retry_first_seconds: float = Field(
        5,
        gt=0,
        le=10,
        description="Wait before a failed callback's first retry (doubling after each failure).",
    )
    callback_retry_max_delay_seconds: float = Field(
        3600, gt=0, description="Longest wait between two attempts of one callback."
    )
    callback_retry_window_seconds: float = Field(
        86_400,
        gt=0,
        description="How long a failing callback is retried before it is given up (SPEC §5: at "
        "least 24 hours; shorter only for tests).",
    )
    callback_concurrency_per_endpoint: int = Field(
        8, ge=1, le=256, description="Attempts one process makes at once to one partner endpoint."
    )
    callback_max_in_flight: int = Field(
        512, ge=1, le=100_000, description="Callback events one process holds (attempting or queued) at once."
    )
    callback_lease_seconds: float = Field(
        60,
        ge=1,
        description="How long a claimed callback event stays one process's; a process that dies "
        "holding it leaves it to another after this.",
    )
    callback_poll_seconds: float = Field(
        0.2, gt=0, le=60, description="How often an idle callback sender looks for due events."
    )
    callback_sender: Literal["process", "inline"] = Field(
        "process",
        description="Where a delivering process (serve, worker) sends its status callbacks: process, a "
        "child process of its own (on another core: callbacks cost the delivery pipeline almost no "
        "CPU; restarted if it dies); inline, on this process's event loop (one process in all).",
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=0, description="How long a SQLite writer waits for the lock."
    )
    sqlite_mmap_bytes: int = Field(
        2**31,
        ge=0,
        description="How much of the SQLite store its connections read through a memory map "
        "rather than read() calls (SQLite caps it at its build's limit, 2 GiB by default); 0: none.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: one line per record, time level logger: message and the request's context; "
        "json: one JSON object per line (time, level, logger, message, request_id, company, message_id).",
    )
    access_log: bool = Field(
        True, description="Log one line per partner API request (method, route, status, duration, company)."
    )
    metrics_enabled: bool = Field(
        True,
        description="Serve GET /metrics and count HTTP requests by route and status. Off: /metrics is "
        "404 and requests are not counted (for measuring what the counting costs).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, GET /metrics requires 'Authorization: Bearer <token>' from any address; "
        "unset, it is served only to clients in metrics_allowed_networks.",
    )
    metrics_allowed_networks: str = Field(
        "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
        description="Comma-separated networks whose clients may read GET /metrics without a token "
        "(default: loopback and private networks).",
    )
    drain_grace_seconds: float = Field(
        5,
        ge=0,
        le=300,
        description="On SIGTERM, how long a process with the partner API keeps serving while /ready "
        "answers 503, so load balancers take it out of rotation before it stops accepting "
        "connections (docs/operations.md, 'Shutdown and drain'). SIGINT skips it.",
    )
    drain_timeout_seconds: float = Field(
        25,
        gt=0,
        le=3600,
        description="The longest a drain takes, from the signal to the exit, grace included; past "
        "it the process stops fast. Below the orchestrator's own limit (Kubernetes: 30 s).",
    )

    dispatch_batch: int = Field(200, ge=1, le=5000, description="Outbox items a worker claims at once.")
    dispatch_max_in_flight: int = Field(2000, ge=1, description="Messages a worker hands over concurrently.")
    dispatch_lease_seconds: int = Field(300, ge=10, description="How long a claimed item stays a worker's.")
    dispatch_poll_seconds: float = Field(
        0.5, gt=0, description="How often an idle worker looks for due work."
    )
    retry_max_attempts: int = Field(30, ge=1, description="Transient failures tolerated before ERROR.")
    retry_max_delay_seconds: int = Field(300, ge=1, description="Longest wait between two attempts.")
    resend_ambiguous: bool = Field(
        False,
        description="Resend a message whose hand-over got no answer (the provider may have it already). "
        "Off: such a message ends UNKNOWN and is never sent twice.",
    )
    receipt_grace_seconds: int = Field(
        3600, ge=0, description="How long after validity a SENT/RECEIVED message waits for a receipt."
    )
    sweep_interval_seconds: float = Field(30, gt=0, description="How often expiry is checked.")

    smpp_carriers: list[SmppCarrier] = Field(
        default_factory=list,
        description="SMPP carrier accounts (JSON). Empty: the built-in SMSC simulator is started.",
    )
    sms_routes: list[SmsRoute] | None = Field(
        None,
        description="The SMS route table (JSON list, docs/routing.md). Unset: every SMS goes to the "
        "first carrier of smpp_carriers.",
    )
    smpp_bind_lease_seconds: float = Field(
        30,
        ge=1,
        description="How long a worker's hold on one of a carrier's binds lasts without renewal "
        "(renewed every third of it). A worker that dies gives its binds up to others after this.",
    )
    whatsapp: WhatsAppSettings | None = Field(
        None, description="WhatsApp Cloud API account (JSON). None: the built-in simulator is started."
    )
    rbm: RbmSettings | None = Field(
        None, description="RCS Business Messaging agent (JSON). None: the built-in simulator is started."
    )
    simulator_receipt_delay_seconds: float = Field(
        0.2, ge=0, description="How long the built-in simulators wait before reporting delivery."
    )
    simulator_smsc_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Where the built-in SMSC simulator listens (0: any free port, logged). Set it to "
        "send mobile-originated messages into it with `partner-gateway simulate mo --port`.",
    )
    simulator_whatsapp_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Where the built-in WhatsApp simulator listens (0: any free port, logged); its "
        "POST /simulator/inbound makes a user write in (`partner-gateway simulate mo --channel WHATSAPP`).",
    )
    simulator_rbm_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Where the built-in RBM simulator listens (0: any free port, logged); its "
        "POST /simulator/inbound makes a user write in (`partner-gateway simulate mo --channel RCS`).",
    )
    inbound_opt_out_keywords: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OPT_OUT_KEYWORDS),
        description="An inbound message that is one of these words (any case) puts its sender on the "
        "company's opt-out list for the channel (JSON list).",
    )
    inbound_opt_in_keywords: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OPT_IN_KEYWORDS),
        description="An inbound message that is one of these words takes its sender off the list (JSON list).",
    )
    simulator_ttl_cap_seconds: float | None = Field(
        2.0, gt=0, description="The built-in RBM simulator reports TTL expiry after at most this long."
    )

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("metrics_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for network in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network such as 10.0.0.0/8 or ::1/128") from None
        return value

    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks of `metrics_allowed_networks`, parsed."""
        parts = (part.strip() for part in self.metrics_allowed_networks.split(","))
        return [ipaddress.ip_network(part, strict=False) for part in parts if part]

    @field_validator("drain_timeout_seconds")
    @classmethod
    def _longer_than_grace(cls, value: float, info: ValidationInfo) -> float:
        grace = info.data.get("drain_grace_seconds")
        if grace is not None and value <= grace:
            raise ValueError(f"must be longer than {ENV_PREFIX}DRAIN_GRACE_SECONDS ({grace:g})")
        return value

    @model_validator(mode="after")
    def _routes_name_carriers(self) -> Settings:
        names = [carrier.name for carrier in self.smpp_carriers]
        if len(set(names)) != len(names):
            raise ValueError(f"{ENV_PREFIX}SMPP_CARRIERS: two carriers have the same name")
        if self.sms_routes is not None:
            if not self.smpp_carriers:
                raise ValueError(
                    f"{ENV_PREFIX}SMS_ROUTES needs {ENV_PREFIX}SMPP_CARRIERS: the routes name carriers"
                )
            try:
                self.route_table()
            except RouteError as error:
                raise ValueError(f"{ENV_PREFIX}SMS_ROUTES: {error}") from None
        return self

    def route_table(self, carriers: list[SmppCarrier] | None = None) -> RouteTable:
        """The SMS route table over `carriers` (default: the configured ones): the configured
        routes, or every message to the first carrier."""
        names = [carrier.name for carrier in (self.smpp_carriers if carriers is None else carriers)]
        if self.sms_routes is None:
            return RouteTable.default(names)
        return RouteTable.build([route.to_route() for route in self.sms_routes], names)

    @field_validator("database_url")
    @classmethod
    def _driver_url(cls, value: str | None) -> str | None:
        return normalize_database_url(value) if value else None

    def rate_limit(self, traffic: Traffic) -> Limit:
        """The default limit of `traffic` (a company's own, when set, replaces it)."""
        if traffic is Traffic.SENDS:
            return Limit.of(self.rate_limit_sends_per_second, self.rate_limit_sends_burst)
        return Limit.of(self.rate_limit_reads_per_second, self.rate_limit_reads_burst)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'partner-gateway.db').resolve()}"
