"""What a running process holds: settings, the store, keys, caches. Built once at start-up, passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from partner_gateway.api.cursor import CursorCodec
from partner_gateway.api.key_cache import ApiKeyCache
from partner_gateway.api.rate_limits.limiter import RateLimiter
from partner_gateway.callbacks.secrets import INSTANCE_SECRET_NAME, SecretBox
from partner_gateway.callbacks.urls import CallbackUrlChecker
from partner_gateway.channels.registry import CHANNELS, ChannelRegistry
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import Traffic
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability import metrics
from partner_gateway.observability.scrape import Scrape
from partner_gateway.readiness import Readiness, store_check
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.database import Database
from partner_gateway.store.depths import store_depths
from partner_gateway.store.migrate import upgrade_to_head
from partner_gateway.store.repositories import secrets


@dataclass(slots=True)
class Runtime:
    settings: Settings
    database: Database
    cursors: CursorCodec
    callback_secrets: SecretBox = field(default_factory=SecretBox.ephemeral)
    """Seals and opens the companies' callback signing secrets (callbacks/secrets.py); `start`
    gives the configured or store-kept key (the default, a key of this object's own, is for
    runtimes built by hand in tests)."""
    writes: WriteBatcher = field(init=False)
    """Group commit for the many small writes (sends, receipts, outcomes); started by a serving
    process. Not started, it runs each write in its own transaction."""
    api_keys: ApiKeyCache = field(init=False)
    """The API keys this process verified lately (it mirrors its store's keys, so one per runtime)."""
    on_accepted: Callable[[], None] = field(default=lambda: None)
    """Called after a message is committed: wakes this process's dispatcher, if it has one."""
    channels: ChannelRegistry = CHANNELS
    """The channels this process serves (channels/registry.py)."""
    callback_urls: CallbackUrlChecker = field(init=False)
    """SPEC §5's callback URL rules, with this process's short cache of resolved hosts."""
    readiness: Readiness = field(init=False)
    """What /ready checks: the store, and what the process's role adds (a worker's broker)."""
    rate_limits: RateLimiter = field(init=False)
    """Each company's buckets in this process (api/rate_limits/); kept in step with the store and
    the other API processes by a RateLimitSync that the serving process runs."""
    scrape: Scrape = field(init=False)
    """What /metrics reads when asked: the store's depths, and what the role adds (a queue's)."""
    broker_up: Callable[[], bool] | None = None
    """Whether this process's connection to its broker is up right now; None when it uses no
    broker (the embedded gateway, an API process). Set by process.py; the hook for a
    `partner_gateway_broker_up` gauge (read at scrape time, it costs nothing per request)."""

    def __post_init__(self) -> None:
        self.writes = WriteBatcher(self.database)
        self.api_keys = ApiKeyCache.from_settings(self.settings)
        self.callback_urls = CallbackUrlChecker(allow_private=self.settings.callback_allow_private_networks)
        self.readiness = Readiness()
        self.rate_limits = RateLimiter.from_settings(self.settings)
        self.rate_limits.on_refused.append(self._count_refused)
        self.readiness.add("store", store_check(self.database))
        self.scrape = Scrape()
        self.scrape.add("store", store_depths(self.database))

    def _count_refused(self, company_id: str, traffic: Traffic) -> None:
        metrics.rate_limited(traffic.value, self.rate_limits.company_class(company_id))

    @classmethod
    async def start(
        cls, settings: Settings, channels: ChannelRegistry = CHANNELS, *, fsync_commits: bool = True
    ) -> Runtime:
        """Open the store, bring its schema up to date, and load the shared keys
        (`fsync_commits`: Database.from_settings)."""
        database = Database.from_settings(settings, fsync_commits=fsync_commits)
        try:
            await upgrade_to_head(database)
            if settings.cursor_secret is not None:
                cursor_key = settings.cursor_secret.get_secret_value().encode()
            else:
                async with database.write() as connection:
                    cursor_key = bytes.fromhex(
                        await secrets.get_or_create(connection, "history-cursor", now_ms())
                    )
            if settings.callback_secret_key is not None:
                callback_secrets = SecretBox.from_passphrase(settings.callback_secret_key.get_secret_value())
            else:
                async with database.write() as connection:
                    callback_secrets = SecretBox.from_hex(
                        await secrets.get_or_create(connection, INSTANCE_SECRET_NAME, now_ms())
                    )
        except BaseException:
            await database.dispose()
            raise
        return cls(
            settings=settings,
            database=database,
            cursors=CursorCodec(cursor_key),
            callback_secrets=callback_secrets,
            channels=channels,
        )

    async def close(self) -> None:
        await self.writes.stop()
        await self.database.dispose()
