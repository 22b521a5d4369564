"""What the SDK's tests share (importable as `sdk_support`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from e2e_support import Gateway
from support import BASE, cli, free_port

SIMULATOR_PORTS = {"SMS": free_port(), "WHATSAPP": free_port(), "RCS": free_port()}
"""Where the served gateway's simulators listen, by channel: users write in through them."""


@dataclass(frozen=True)
class Company:
    """A company of the served gateway, with its key."""

    gateway: Gateway
    company_id: str
    api_key: str

    @property
    def url(self) -> str:
        return self.gateway.url

    def set_limits(self, *, sends: str, reads: str) -> None:
        """`company limits` as an operator runs it, then wait until the gateway applies it: the
        reads policy an answer carries shows the new burst (the sends one is read with it)."""
        cli(self.gateway.env, "company", "limits", self.company_id, "--sends", sends, "--reads", reads)
        burst = reads.partition("/")[2]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = httpx.get(
                f"{self.url}{BASE}/callbacks/settings",
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=10,
            )
            if f";q={burst};" in answer.headers.get("ratelimit-policy", ""):
                return
            time.sleep(0.1)
        raise AssertionError("the new limits did not apply within 30 s")
