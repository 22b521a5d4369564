"""The channel contract: what a channel declares to the gateway, in one `ChannelEntry`.

A channel is one folder under channels/ whose `channel.py` makes one entry, and one line in
channels/registry.py that lists it. From the entries alone the gateway derives everything else
that depends on which channels exist: the send routes (Litestar's, with their OpenAPI operations,
and the front's fast path), every "one of SMS, RCS, WHATSAPP" in error messages and in the OpenAPI
document, the providers a process starts, and the built-in simulators of the embedded gateway.

An entry says:

* `channel`, `path`, `noun`, `operation_id`: the channel's name on the wire and its send route,
  `POST /partner-gateway/v1/{path}/messages` ("Send {noun}", operation `operation_id`);
* `request_type`: the send request's body, a `SendRequest` with the channel's own fields;
* `check(request, problems) -> SendFields`: the channel's rules for that body (each problem appended
  as (field, message), so a partner learns all of them at once), and what the stored message keeps;
* `validity`: the bounds and default of `validitySeconds`;
* `build_provider(context)`: the provider that hands its messages over (None: not configured);
* `simulate(settings)`: starts the built-in simulator when the channel is not configured, and says
  how to point the provider at it (None: configured, or no simulator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, Protocol, TypeVar

import msgspec

from partner_gateway.channels.base import Provider
from partner_gateway.domain.sending import Problems, ValidityBounds
from partner_gateway.domain.statuses import Channel

if TYPE_CHECKING:
    from partner_gateway.config import Settings
    from partner_gateway.runtime import Runtime

To = Annotated[
    str, msgspec.Meta(description="Destination in E.164, e.g. +4915112345678", examples=["+4915112345678"])
]
Reference = Annotated[
    str | None, msgspec.Meta(description="Your own reference, up to 64 characters, echoed in every status")
]
ValiditySeconds = Annotated[
    int | None,
    msgspec.Meta(description="Time to live in seconds; bounds and defaults per channel are in docs/api.md"),
]
CallbackUrl = Annotated[
    str | None, msgspec.Meta(description="Where status changes of this message are pushed")
]


class SendRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """The fields every channel's send request has (SPEC §3.1); a channel's request adds its own."""

    to: To
    validity_seconds: ValiditySeconds = None
    callback_url: CallbackUrl = None
    reference: Reference = None


@dataclass(frozen=True, slots=True)
class SendFields:
    """What a channel's rules derive from a valid request, stored with the message."""

    sender: str | None = None
    encoding: str | None = None  # "GSM7" or "UCS2" for a text encoded into segments
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a channel's provider is built from in one process."""

    settings: Settings
    simulated: (
        Any  # the settings pointing at this channel's simulator (Simulation.provider_settings), or None
    )
    runtime: Runtime | None  # the process's store, for what providers share across processes
    exclusive: bool  # this process is the only worker on its store (the embedded gateway)


async def _nothing_to_stop() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Simulation:
    """A built-in simulator started for a channel that is not configured."""

    provider_settings: Any  # what build_provider reads instead of the channel's settings
    stop: Callable[[], Awaitable[None]] = _nothing_to_stop
    point_webhooks_at: Callable[[str], None] = field(default=lambda gateway_url: None)
    """Called with the gateway's base URL once it listens: the simulator calls it back there."""


class CallingBack(Protocol):
    """A simulator that calls the gateway's webhook back, as Meta and Google do."""

    webhook_url: str | None

    async def stop(self) -> None: ...


def calling_back(simulator: CallingBack, provider_settings: Any, webhook_path: str) -> Simulation:
    """The Simulation of a simulator that posts to the gateway's `/webhooks/{webhook_path}`."""

    def point_webhooks_at(gateway_url: str) -> None:
        simulator.webhook_url = f"{gateway_url}/webhooks/{webhook_path}"

    return Simulation(provider_settings, stop=simulator.stop, point_webhooks_at=point_webhooks_at)


SettingsT = TypeVar("SettingsT")


def configured_or_simulated(
    configured: Callable[[Settings], SettingsT | None], provider: Callable[[SettingsT], Provider]
) -> Callable[[ProviderContext], Provider | None]:
    """A `build_provider` for a channel of one account: the configured one, else the simulator's."""

    def build(context: ProviderContext) -> Provider | None:
        account: SettingsT | None = configured(context.settings)
        if account is None:
            account = context.simulated
        return provider(account) if account is not None else None

    return build


RequestT = TypeVar("RequestT", bound=SendRequest)


@dataclass(frozen=True, slots=True)
class ChannelEntry(Generic[RequestT]):
    """One channel, as the gateway sees it (the module docstring says what each part is for)."""

    channel: Channel
    path: str
    noun: str
    operation_id: str
    request_type: type[RequestT]
    check: Callable[[RequestT, Problems], SendFields]
    validity: ValidityBounds
    build_provider: Callable[[ProviderContext], Provider | None]
    simulate: Callable[[Settings], Awaitable[Simulation | None]] | None = None
