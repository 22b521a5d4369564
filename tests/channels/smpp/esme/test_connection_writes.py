"""Frames sent in one pass of the event loop leave the ESME in one socket write, in order."""

from __future__ import annotations

import asyncio

from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.pdu import EnquireLink
from partner_gateway.channels.smpp.esme.config import EsmeConfig, EsmeCounters
from partner_gateway.channels.smpp.esme.connection import Connection, SessionShared


async def test_frames_of_one_pass_leave_together_in_order() -> None:
    received = bytearray()
    got_all = asyncio.Event()
    frames = [encode(EnquireLink(sequence_number=number)) for number in (1, 2, 3)]

    async def carrier(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while len(received) < sum(map(len, frames)) + len(frames[0]):
            chunk = await reader.read(65536)
            if not chunk:
                break
            received.extend(chunk)
        got_all.set()
        writer.close()

    server = await asyncio.start_server(carrier, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writes: list[bytes] = []
    write = writer.write

    def spy(data: bytes) -> None:  # the real write, counted
        writes.append(bytes(data))
        write(data)

    writer.write = spy  # type: ignore[method-assign]

    async def ignore(_connection: Connection, _pdu: object) -> None:
        return None

    shared = SessionShared(
        config=EsmeConfig(host="127.0.0.1", port=port, system_id="test", password="pw"),
        counters=EsmeCounters(),
        on_deliver=ignore,  # type: ignore[arg-type]
        deliver_slots=asyncio.Semaphore(1),
        handlers=set(),
    )
    connection = Connection(reader, writer, shared, "test")
    try:
        for frame in frames:
            connection.send(frame)
        assert writes == []  # held until the loop's pass ends
        await asyncio.sleep(0)
        assert writes == [b"".join(frames)]
        connection.send(frames[0])
        await connection.drain()  # a drain writes what is held at once
        assert writes[1:] == [frames[0]]
        await asyncio.wait_for(got_all.wait(), 5)
        assert bytes(received) == b"".join(frames) + frames[0]
    finally:
        await connection.aclose("test over")
        server.close()
        await server.wait_closed()
