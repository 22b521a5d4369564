"""A real local receiver for callbacks (CallbackReceiver on uvicorn) and a sender to feed it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from callback_support import StartReceiver

from partner_gateway.callbacks.listener import Answer, CallbackReceiver, accept_all
from partner_gateway.embedded_server import EmbeddedServer


@pytest.fixture
async def start_receiver() -> AsyncIterator[StartReceiver]:
    """Start a receiver (on `port`, default any): the receiver and its URL."""
    async with AsyncExitStack() as stack:

        async def start(
            answer: Answer = accept_all, *, port: int = 0, path: str = "/cb"
        ) -> tuple[CallbackReceiver, str]:
            receiver = CallbackReceiver(answer=answer)
            server = EmbeddedServer(receiver, port=port, name="callback receiver", stop_timeout=1.0)
            bound = await server.start()
            stack.push_async_callback(server.stop)
            return receiver, f"http://127.0.0.1:{bound}{path}"

        yield start
