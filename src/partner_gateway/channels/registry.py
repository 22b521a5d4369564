"""The channel registry: which channels this gateway serves, one explicit entry each.

Adding a channel is one folder under channels/ (its `channel.py` makes a `ChannelEntry`, see
channels/entry.py) and one line in `CHANNELS` below. A process takes the registry it is given
(`Runtime.channels`, `create_app(..., channels)`, `start_pipeline(..., channels)`), so a test can
serve a channel of its own without changing any module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from partner_gateway.channels.entry import ChannelEntry
from partner_gateway.channels.rcs.channel import RCS
from partner_gateway.channels.smpp.channel import SMS
from partner_gateway.channels.whatsapp.channel import WHATSAPP
from partner_gateway.domain.statuses import CHANNEL_NAME, Channel

ROUTE_PATH = re.compile(r"[a-z][a-z0-9-]{0,31}")


class ChannelRegistry:
    """Channel entries by channel, in the order they were listed (the order error messages and the
    OpenAPI document name them)."""

    def __init__(self, entries: Iterable[ChannelEntry[Any]]) -> None:
        self._entries: dict[str, ChannelEntry[Any]] = {}
        paths: set[str] = set()
        for entry in entries:
            if not CHANNEL_NAME.fullmatch(entry.channel.value) or not ROUTE_PATH.fullmatch(entry.path):
                raise ValueError(
                    f"channel {entry.channel.value!r} (/{entry.path}): a name of {CHANNEL_NAME.pattern}"
                    f" and a path of {ROUTE_PATH.pattern} are needed"
                )
            if entry.channel.value in self._entries or entry.path in paths:
                raise ValueError(f"channel {entry.channel.value} (/{entry.path}) is listed twice")
            self._entries[entry.channel.value] = entry
            paths.add(entry.path)
        self.names: tuple[str, ...] = tuple(self._entries)
        self.choices = ", ".join(self.names)
        """The channels' names for a message: "SMS, RCS, WHATSAPP"."""

    def __iter__(self) -> Iterator[ChannelEntry[Any]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, channel: Channel) -> ChannelEntry[Any]:
        return self._entries[channel.value]

    def find(self, name: str | None) -> Channel | None:
        """The channel served under exactly this name (SPEC §1: case matters), or None."""
        if name is None:
            return None
        entry = self._entries.get(name)
        return entry.channel if entry is not None else None

    def including(self, *entries: ChannelEntry[Any]) -> ChannelRegistry:
        """This registry with more channels (an extension, or a test's own)."""
        return ChannelRegistry([*self, *entries])


CHANNELS = ChannelRegistry([SMS, RCS, WHATSAPP])
"""The channels the gateway serves: SPEC §1's three."""
