"""Splitting a TCP byte stream into whole SMPP frames."""

from __future__ import annotations

import struct

from partner_gateway.channels.smpp.codec.constants import HEADER_LENGTH, MAX_PDU_LENGTH, CommandStatus
from partner_gateway.channels.smpp.codec.pdu import PduError

_S = CommandStatus


class PduReader:
    """Splits a TCP byte stream into whole frames (pass each to :func:`decode`).

    A command_length below 16 or above ``max_length`` makes the stream unusable: the error (with the
    sequence_number when the header was complete) is raised at once, or, when whole frames came
    before it in the same chunk, those frames are returned and the error is raised by the next
    ``feed`` (it is also available as ``error``). After ``feed`` returns, at most one partial frame
    (fewer than ``max_length`` octets) is buffered.
    """

    def __init__(self, max_length: int = MAX_PDU_LENGTH) -> None:
        if max_length < HEADER_LENGTH:
            raise ValueError(f"max_length must be at least {HEADER_LENGTH}")
        self.max_length = max_length
        self._buffer = bytearray()
        self.error: PduError | None = None

    @property
    def buffered(self) -> int:
        """Octets held for a frame that has not fully arrived."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            raise self.error
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if HEADER_LENGTH <= length <= self.max_length:
                if len(buf) - pos < length:
                    break
                frames.append(bytes(buf[pos : pos + length]))
                pos += length
                continue
            header = len(buf) - pos >= HEADER_LENGTH
            cid, _, seq = struct.unpack_from(">III", buf, pos + 4) if header else (None, 0, 0)
            limit = f"at least {HEADER_LENGTH}" if length < HEADER_LENGTH else f"at most {self.max_length}"
            self.error = PduError(
                _S.ESME_RINVCMDLEN, seq, f"command_length {length}, {limit}", command_id=cid
            )
            buf.clear()
            if not frames:
                raise self.error
            return frames
        del buf[:pos]
        return frames
