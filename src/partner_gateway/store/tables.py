"""The schema, as SQLAlchemy Core tables; Alembic migrations are written against it.

Times are integer milliseconds since the epoch (UTC). Every index exists for one query in
`repositories`; the comment beside each says which.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

companies = Table(
    "companies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("default_sender", String(20)),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("company_id", String(40), ForeignKey("companies.id"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # the bearer check: one unique look-up
    Column("prefix", String(12), nullable=False),  # shown in listings so a person can tell keys apart
    Column("label", String(100)),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index(None, "company_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("company_id", String(40), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("to_number", String(16), nullable=False),
    Column("sender", String(20)),
    Column("reference", String(64)),
    Column("status", String(10), nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("status_description", String(300), nullable=False),
    Column("error_code", String(40)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("read_at", BigInteger),
    Column("expires_at", BigInteger, nullable=False),
    Column("encoding", String(4)),
    Column("segments", SmallInteger),
    Column("callback_url", String(2048)),
    Column("body", Text, nullable=False),  # the channel's content as JSON, for the dispatcher
    # On an SMS sent in place of an RCS message the destination could not get: the original's
    # id. The original's status follows this message's (see domain/sms_fallback.py).
    Column("fallback_for", String(40)),
    # How many times the status (or the read time) changed: a callback event's `sequence` is the
    # count after its change, read with the status and bumped in the same UPDATE (migration 0007).
    Column("status_changes", Integer, nullable=False, server_default="0"),
    Column("fallback_sms", String(40)),  # on an RCS message: the SMS sent in its place
    # History pages, newest first, one index per filter shape (see MessageRepository.history):
    Index("ix_messages_history", "company_id", "created_at", "id"),
    Index("ix_messages_history_channel", "company_id", "channel", "created_at", "id"),
    Index("ix_messages_history_status", "company_id", "channel", "status", "created_at", "id"),
    Index("ix_messages_history_to", "company_id", "to_number", "created_at", "id"),
    # The expiry sweep: messages still waiting for a receipt, by when they lapse.
    Index("ix_messages_open", "status_rank", "expires_at"),
)

message_events = Table(
    "message_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),  # when the provider says it happened
    Column("recorded_at", BigInteger, nullable=False),  # when we stored it
    Column("source", String(20), nullable=False),  # gateway, smpp, whatsapp, rcs
    Column("status", String(10)),  # the mapped status, or NULL for a report that maps to none
    Column("raw_state", String(100)),  # the provider's own word, kept verbatim
    Column("description", String(300), nullable=False),
    Column("error_code", String(40)),
    Column("dedup_key", String(200), nullable=False),  # the same report twice is stored once
    UniqueConstraint("message_id", "dedup_key"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, unique=True),
    Column("channel", String(10), nullable=False),
    Column("available_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    # queued: waiting; claimed: a worker holds it until lease_until (nothing written yet);
    # written: durably marked just before the provider write (see dispatch/worker.py).
    Column("state", String(10), nullable=False, server_default="queued"),
    Column("lease_until", BigInteger),
    Column("parts_done", SmallInteger, nullable=False, server_default="0"),
    Column("last_error", String(300)),
    Index(None, "available_at"),
    Index("ix_outbox_due", "state", "available_at"),
)

message_parts = Table(
    "message_parts",
    metadata,
    Column("message_id", String(40), primary_key=True),
    Column("part_no", SmallInteger, primary_key=True),
    Column("parts_total", SmallInteger, nullable=False),
    Column("provider", String(40), nullable=False),  # e.g. smpp:carrier-a, whatsapp, rcs
    Column("provider_message_id", String(100), nullable=False),  # as the provider gave it
    Column("provider_key", String(100), nullable=False),  # canonical form receipts are matched on
    Column("status", String(10), nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("error_code", String(40)),
    Column("description", String(300), nullable=False),
    Column("submitted_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("read_at", BigInteger),
    UniqueConstraint("provider", "provider_key"),  # a receipt finds its part in one look-up
)

pending_reports = Table(
    "pending_reports",
    metadata,
    # A receipt that arrived before its submission was recorded: kept, applied once it is.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),
    Column("provider_key", String(100), nullable=False),
    Column("dedup_key", String(200), nullable=False),
    Column("report", Text, nullable=False),  # the StatusReport as versioned JSON
    Column("received_at", BigInteger, nullable=False),
    # Where the receipt says the message went, and how it began: enough to recognise the
    # receipt of a hand-over that got no answer (see unconfirmed_handovers).
    Column("destination", String(20)),
    Column("text_excerpt", String(40)),
    # When the unmatched-report watch told of it (dispatch/unmatched.py): once, whichever process.
    Column("noticed_at", BigInteger),
    UniqueConstraint("provider", "provider_key", "dedup_key"),
    Index("ix_pending_reports_destination", "provider", "destination"),
)

unconfirmed_handovers = Table(
    "unconfirmed_handovers",
    metadata,
    # A single-part message written to a provider that never answered. If a receipt turns up
    # whose destination and text excerpt match exactly one such message, it is that message's.
    Column("message_id", String(40), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("destination", String(20), nullable=False),
    Column("text_excerpt", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_unconfirmed_handovers_destination", "provider", "destination"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("company_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

instance_secrets = Table(
    "instance_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

bind_slots = Table(
    "bind_slots",
    metadata,
    # A carrier's `binds` are a total across the cluster: a worker opens bind `slot` of `carrier`
    # only while it holds this lease (see channels/smpp/bind_slots.py).
    Column("carrier", String(40), primary_key=True),
    Column("slot", SmallInteger, primary_key=True),  # 1 .. binds, as in the session names
    Column("holder", String(100), nullable=False),  # host-pid-random of the worker process
    Column("expires_at", BigInteger, nullable=False),
    Column("acquired_at", BigInteger, nullable=False),  # when this holder took it (renewals keep it)
)

carrier_stats = Table(
    "carrier_stats",
    metadata,
    # What each worker sees of each SMPP carrier, written every bind-lease renewal interval
    # (channels/smpp/provider.py) and read by `partner-gateway carriers`.
    Column("carrier", String(40), primary_key=True),
    Column("holder", String(100), primary_key=True),  # the worker, as in bind_slots
    Column("health", String(10), nullable=False),  # domain.routing.Health
    Column("binds_held", SmallInteger, nullable=False),
    Column("binds_bound", SmallInteger, nullable=False),
    Column("window", Integer, nullable=False),  # unanswered submit_sm allowed on the held binds
    Column("in_flight", Integer, nullable=False),  # unanswered submit_sm now
    Column("submits_per_second", Float, nullable=False),  # accepted, over the last interval
    Column("receipts_per_second", Float, nullable=False),
    Column("submits_total", BigInteger, nullable=False),  # since the worker started
    Column("receipts_total", BigInteger, nullable=False),
    Column("last_error", String(300)),
    Column("last_error_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

callback_settings = Table(
    "callback_settings",
    metadata,
    # A company's default callback URL and its signing secrets, sealed (callbacks/secrets.py).
    # During 24 hours after `rotated_at` the previous secret signs too. The later event outbox
    # refers to companies, not to this row: a message's own callbackUrl needs no row here.
    Column("company_id", String(40), ForeignKey("companies.id"), primary_key=True),
    Column("url", String(2048)),  # None: no default URL (a send's callbackUrl may still name one)
    Column("secret", Text),  # None: no secret made yet
    Column("previous_secret", Text),
    Column("rotated_at", BigInteger),  # when `secret` replaced `previous_secret`
    Column("updated_at", BigInteger, nullable=False),
)

company_rate_limits = Table(
    "company_rate_limits",
    metadata,
    # An operator's limits for one company (`partner-gateway company limits`); a NULL rate is the
    # default of the settings, a NULL burst two seconds' worth of the rate. Every API process
    # reads the whole table every few seconds (api/rate_limits/sync.py).
    Column("company_id", String(40), ForeignKey("companies.id"), primary_key=True),
    Column("sends_per_second", Float),
    Column("sends_burst", Integer),
    Column("reads_per_second", Float),
    Column("reads_burst", Integer),
    Column("updated_at", BigInteger, nullable=False),
)

rate_limit_usage = Table(
    "rate_limit_usage",
    metadata,
    # What each API process admitted per company and traffic (sends, reads), a running count it
    # re-publishes every sync period; the others read the rows changed since their last look
    # (ix on updated_at) and take the growth out of their own buckets (domain/rate_limits.py).
    Column("process_id", String(100), primary_key=True),  # host-pid-random
    Column("company_id", String(40), primary_key=True),
    Column("traffic", String(10), primary_key=True),
    Column("admitted", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "updated_at"),
)

callback_events = Table(
    "callback_events",
    metadata,
    # One status change of a message that had somewhere to go (SPEC §5), written in the change's
    # transaction with the exact bytes every attempt sends (store/repositories/callback_events.py).
    Column("id", String(40), primary_key=True),  # the eventId: evt_ + ULID
    Column("company_id", String(40), nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    # The message's own callbackUrl; None: the company's default URL as it is at each attempt.
    Column("url", String(2048)),
    Column("body", Text, nullable=False),
    Column("state", String(10), nullable=False),  # pending, delivered, given_up
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger),  # while pending: when it is due
    Column("claimed_until", BigInteger),  # a sender holds it until then (a dead one's is retaken)
    Column("pending_since", BigInteger, nullable=False),  # the retry window's start (made, replayed)
    Column("finished_at", BigInteger),  # delivered or given up
    Index("ix_callback_events_due", "state", "next_attempt_at"),  # the senders' claim
    Index("ix_callback_events_message", "message_id", "sequence"),  # GET /messages/{id}/callbacks
    Index("ix_callback_events_company", "company_id", "occurred_at"),  # replay of a window
)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("response_status", SmallInteger),  # the partner's HTTP status, when it answered
    Column("error", String(300)),  # why there was no answer (refused, timeout, URL refused)
    Column("duration_ms", Integer, nullable=False),
    Index(None, "event_id"),
)

company_numbers = Table(
    "company_numbers",
    metadata,
    # The numbers, short codes, WhatsApp numbers and RBM agents an operator assigned to a company
    # (`partner-gateway company numbers`): an inbound message goes to the company owning its
    # recipient on its channel, one look-up by primary key (domain/inbound.py normalize_number).
    Column("channel", String(10), primary_key=True),
    Column("number", String(100), primary_key=True),
    Column("company_id", String(40), ForeignKey("companies.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "company_id"),
)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", String(40), primary_key=True),  # in_ + ULID
    Column("company_id", String(40), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("from_number", String(100), nullable=False),
    Column("to_number", String(100), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("provider", String(40), nullable=False),
    Column("provider_message_id", String(200)),  # wamid, RBM messageId; None for SMPP (MO has none)
    Column("parts", SmallInteger, nullable=False),
    Column("raw", Text, nullable=False),  # what arrived, as JSON: every part, every webhook item
    Column("dedup_key", String(200), nullable=False),
    UniqueConstraint("channel", "dedup_key"),  # a redelivered message is stored once
    # The inbound list (GET /messages/inbound), newest first, one index per filter shape:
    Index("ix_inbound_messages_list", "company_id", "received_at", "id"),
    Index("ix_inbound_messages_list_channel", "company_id", "channel", "received_at", "id"),
    Index("ix_inbound_messages_list_from", "company_id", "from_number", "received_at", "id"),
    Index("ix_inbound_messages_list_to", "company_id", "to_number", "received_at", "id"),
)

inbound_parts = Table(
    "inbound_parts",
    metadata,
    # A part of a concatenated mobile-originated SMS until all its parts are here; then they are
    # joined into one inbound message and deleted in that transaction. A part repeated (the
    # carrier redelivers it) is stored once.
    Column("group_key", String(64), primary_key=True),  # sha256 of carrier, from, to, reference, total
    Column("seq", SmallInteger, primary_key=True),
    Column("total", SmallInteger, nullable=False),
    Column("data_coding", SmallInteger, nullable=False),
    Column("payload", Text, nullable=False),  # hex of the part's octets, header removed
    Column("received_at", BigInteger, nullable=False),
    Index(None, "received_at"),  # parts whose siblings never came are dropped after a day
)

opt_outs = Table(
    "opt_outs",
    metadata,
    # A company's opt-out list per channel: a send there ends in ERROR gw:opted-out before any
    # provider sees it (dispatch/handover.py), one primary-key look-up per hand-over.
    Column("company_id", String(40), primary_key=True),
    Column("channel", String(10), primary_key=True),
    Column("number", String(100), primary_key=True),  # normalize_number of the destination
    Column("source", String(20), nullable=False),  # keyword (an inbound STOP) or api
    Column("created_at", BigInteger, nullable=False),
)

# GET /messages/stats: the messages of a company, channel and hour of acceptance, by their current
# status and error code ('' for none), kept as statuses change (store/message_stats.py). A
# message's change moves it from its old row to its new one, in the change's transaction. Each
# write goes to one of a few shards of those rows, so that concurrent writers on PostgreSQL do not
# wait for each other's row locks; reads sum the shards.
message_stats = Table(
    "message_stats",
    metadata,
    Column("company_id", String(40), primary_key=True),
    Column("channel", String(10), primary_key=True),
    Column("hour", BigInteger, primary_key=True),  # the acceptance hour's start, ms
    Column("status", String(10), primary_key=True),
    Column("error_code", String(40), primary_key=True),
    Column("shard", SmallInteger, primary_key=True, server_default="0"),  # store/message_stats.py
    Column("count", BigInteger, nullable=False),
)

# The time from acceptance to the first final status, as counts per logarithmic bin
# (store/message_stats.py's `latency_bin`): the p50/p95 of GET /messages/stats.
message_latency = Table(
    "message_latency",
    metadata,
    Column("company_id", String(40), primary_key=True),
    Column("channel", String(10), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("bin", SmallInteger, primary_key=True),
    Column("shard", SmallInteger, primary_key=True, server_default="0"),
    Column("count", BigInteger, nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # A browser signed in to the partner console (console/sessions.py): the token's SHA-256 (the
    # token is only in the cookie), the key it was exchanged for (a revoked key's sessions end:
    # each look-up joins api_keys), the form token that guards its changes.
    Column("token_hash", String(64), primary_key=True),  # the session look-up
    Column("company_id", String(40), nullable=False),
    Column("api_key_id", String(40), ForeignKey("api_keys.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # absolute: created_at + the session's longest life
    Column("last_seen_at", BigInteger, nullable=False),  # idle expiry counts from here
    Index(None, "expires_at"),  # the purge of ended sessions at each sign-in
    Index(None, "api_key_id"),  # deleting a revoked key's sessions
)
