"""User Data Header concatenation (`05 00 03 RR TT NN` and the 16-bit reference form)."""

from __future__ import annotations

from typing import NamedTuple


class ConcatInfo(NamedTuple):
    """A concatenation UDH: ``header_length`` octets (UDHL included) precede the part's text."""

    reference: int
    total: int
    sequence: int
    header_length: int


def udh_concat(ref: int, total: int, seq: int) -> bytes:
    """The 6-octet concatenation UDH with an 8-bit reference: ``05 00 03 RR TT NN``."""
    if not (0 <= ref <= 255 and 1 <= seq <= total <= 255):
        raise ValueError(f"bad concatenation header ref={ref} total={total} seq={seq}")
    return bytes((0x05, 0x00, 0x03, ref, total, seq))


def parse_udh_concat(short_message: bytes) -> ConcatInfo | None:
    """The concatenation element (IEI 0x00, 8-bit ref, or 0x08, 16-bit ref) of the UDH that starts
    ``short_message`` (send with esm_class UDHI), or None when there is none or it is malformed."""
    if not short_message or len(short_message) < 1 + short_message[0]:
        return None
    end = 1 + short_message[0]
    pos = 1
    while pos + 2 <= end:
        iei, size = short_message[pos], short_message[pos + 1]
        data = short_message[pos + 2 : pos + 2 + size]
        if pos + 2 + size > end:
            return None
        if (iei, size) in ((0x00, 3), (0x08, 4)):
            ref = int.from_bytes(data[:-2], "big")
            total, seq = data[-2], data[-1]
            return ConcatInfo(ref, total, seq, end) if 1 <= seq <= total else None
        pos += 2 + size
    return None
