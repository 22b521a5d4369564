"""Frame to PDU: ``decode`` reads one whole frame by its command's field table, or says what is wrong.

One path: decoding by compiled steps, as :mod:`.encoder` does, was measured no faster than this loop.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from partner_gateway.channels.smpp.codec.constants import (
    HEADER_LENGTH,
    MAX_SHORT_MESSAGE,
    CommandStatus,
    known_status,
)
from partner_gateway.channels.smpp.codec.pdu import BY_COMMAND_ID, PDU_TYPES, NetworkErrorCode, Pdu, PduError

_S = CommandStatus
_TYPED_TLVS: Final[dict[type[Pdu], dict[int, tuple[str, str]]]] = {
    cls: {tag: (name, kind) for name, tag, kind in cls.TLVS} for cls in PDU_TYPES
}
_TLV_WIDTHS: Final = {"u8": 1, "u16": 2, "ne": 3}


def _decode_tlv(kind: str, raw: bytes, what: str) -> Any:
    width = _TLV_WIDTHS.get(kind)
    if width is not None and len(raw) != width:
        raise PduError(_S.ESME_RINVPARLEN, 0, f"{what}: {len(raw)} octets, expected {width}")
    if kind == "ne":
        return NetworkErrorCode(raw[0], int.from_bytes(raw[1:], "big"))
    if kind == "c":  # tolerate a missing terminator, which some SMSCs omit
        text = raw[:-1] if raw.endswith(b"\0") else raw
        if b"\0" in text or len(text) > 64:
            raise PduError(_S.ESME_RINVOPTPARAMVAL, 0, f"{what}: not a C-Octet-String of at most 64 octets")
        return text.decode("latin-1")
    return raw if width is None else int.from_bytes(raw, "big")


def _decode_fields(cls: type[Pdu], frame: bytes, fields: dict[str, Any]) -> None:
    pos, end = HEADER_LENGTH, len(frame)
    for name, kind, size, status in cls.BODY:
        if pos >= end:
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"body ends before {name}")
        if kind == "u8":
            fields[name], pos = frame[pos], pos + 1
        elif kind == "sm":
            n, pos = frame[pos], pos + 1
            if n > MAX_SHORT_MESSAGE or pos + n > end:
                raise PduError(status, 0, f"sm_length {n} with {end - pos} octets left in the body")
            fields[name], pos = frame[pos : pos + n], pos + n
        else:
            nul = frame.find(b"\0", pos, min(end, pos + size))
            if nul < 0:
                short = end - pos < size
                raise PduError(
                    _S.ESME_RINVCMDLEN if short else status, 0, f"{name}: no NUL within {size} octets"
                )
            fields[name], pos = frame[pos:nul].decode("latin-1"), nul + 1
            if kind == "t" and len(fields[name]) not in (0, 16):
                raise PduError(status, 0, f"{name}: an SMPP time has 16 characters, got {fields[name]!r}")
    if not cls.HAS_BODY:
        if pos != end:
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"{cls.__name__} has no body, got {end - pos} octets")
        return
    typed = _TYPED_TLVS[cls]
    extra: list[tuple[int, bytes]] = []
    while pos < end:
        if end - pos < 4:
            if not any(frame[pos:end]):
                break  # NUL padding after the last field, which some peers send
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"{end - pos} stray octets after the TLVs")
        tag, n = struct.unpack_from(">HH", frame, pos)
        raw, pos = frame[pos + 4 : pos + 4 + n], pos + 4 + n
        if pos > end:
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"TLV 0x{tag:04x} runs past the end of the PDU")
        if tag not in typed:
            extra.append((tag, raw))
        elif fields.get(typed[tag][0]) is not None:
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"TLV 0x{tag:04x} appears twice")
        else:
            fields[typed[tag][0]] = _decode_tlv(typed[tag][1], raw, typed[tag][0])
    fields["extra_tlvs"] = tuple(extra)


def decode(frame: bytes) -> Pdu:
    """The PDU in ``frame`` (exactly one PDU, header included); raises :class:`PduError`.

    The error's ``command_status`` is ESME_RINVCMDLEN for a length problem (header, body shorter than
    its fields, leftover octets), ESME_RINVCMDID for an unknown command_id, the field's own status
    (ESME_RINVSRCADR, ESME_RINVMSGLEN, ESME_RINVSYSID, ...) for an over-long field, and
    ESME_RINVOPTPARSTREAM / ESME_RINVPARLEN / ESME_RINVOPTPARAMVAL for broken TLVs. ``command_id``
    and ``sequence_number`` are set whenever the header could be read.
    """
    frame = bytes(frame)
    if len(frame) < HEADER_LENGTH:
        raise PduError(_S.ESME_RINVCMDLEN, 0, f"{len(frame)} octets is shorter than a PDU header")
    length, command_id, status, seq = struct.unpack_from(">IIII", frame)
    try:
        if length != len(frame):
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"command_length {length}, frame has {len(frame)} octets")
        cls = BY_COMMAND_ID.get(command_id)
        if cls is None:
            raise PduError(_S.ESME_RINVCMDID, 0, f"unknown command_id 0x{command_id:08x}")
        fields: dict[str, Any] = {"sequence_number": seq, "command_status": known_status(status)}
        if not (cls.BODY_OPTIONAL and length == HEADER_LENGTH):
            _decode_fields(cls, frame, fields)
        return cls(**fields)
    except PduError as exc:
        raise PduError(exc.command_status, seq, exc.detail, command_id=command_id) from None
