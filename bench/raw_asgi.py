"""The HTTP ceiling: an ASGI app that answers every request with a static JSON, nothing else.

It runs on exactly the server the gateway runs on, one process: uvicorn as
`partner_gateway.api.server.build_config` sets it up (httptools with the gateway's protocol
subclass, uvloop, no access log, the same keep-alive), or granian as
`partner_gateway.api.granian_server.GranianServer` does (its embedded server on uvloop, the same
request-target check in front of the app). The gap between this and a gateway figure on the same
server is the framework, the authentication and the work of the route, not the server software.

    .venv/bin/python bench/raw_asgi.py --port 8090 [--server granian]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

import uvicorn
import uvloop

from partner_gateway.api.granian_server import GranianServer
from partner_gateway.api.server import build_config

BODY = b'{"status":"ok"}'  # what the gateway's GET /health answers, byte for byte
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
KEEP_ALIVE_SECONDS = 75  # the gateway's default PARTNER_GATEWAY_KEEP_ALIVE_SECONDS

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Static JSON for HTTP; lifespan acknowledged (build_config turns lifespan on)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def serve_granian(host: str, port: int) -> None:
    """GranianServer on uvloop until SIGINT (what the bench sends to stop it)."""
    listener = socket.create_server((host, port))
    server = GranianServer(cast(Any, app), listener, keep_alive_seconds=KEEP_ALIVE_SECONDS)

    async def serve() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, server.stop)
        await server.serve()

    uvloop.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    if args.server == "granian":
        serve_granian(args.host, args.port)
        return
    config = build_config(
        cast(Any, app),
        host=args.host,
        port=args.port,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        log_level="warning",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
