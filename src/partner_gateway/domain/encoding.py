"""SMS text encoding: GSM 03.38 (3GPP TS 23.038) 7-bit default alphabet or UCS-2, segment counting, splitting.

Text is sent as GSM7 when every character is in the basic table or the extension table (an extension
character is sent as ESC 0x1B + code and costs 2 septets); otherwise the whole text is sent as UCS2
(in practice UTF-16-BE, so a non-BMP character such as an emoji costs 2 code units, a surrogate pair).
There is no lossy transliteration: e.g. 'ç' is not in the table (only 'Ç' at 0x09) and forces UCS2.

Splitting is greedy and never cuts an escape sequence or a surrogate pair, which makes it optimal (the
fewest parts). It deliberately does *not* keep grapheme clusters (combining marks, ZWJ emoji sequences,
flags) together, like handsets and SMSCs; the receiving handset reassembles the parts before rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GSM7_PER_SEGMENT",
    "GSM7_SINGLE_SEGMENT",
    "UCS2_PER_SEGMENT",
    "UCS2_SINGLE_SEGMENT",
    "EncodedText",
    "Encoding",
    "TextAnalysis",
    "analyze",
    "decode_gsm7",
    "decode_ucs2",
    "encode_gsm7",
    "encode_parts",
    "encode_ucs2",
    "split",
]

GSM7_SINGLE_SEGMENT = 160  # septets in a single SMS
GSM7_PER_SEGMENT = 153  # septets per part of a concatenated SMS (6-octet UDH)
UCS2_SINGLE_SEGMENT = 70  # UTF-16 code units in a single SMS
UCS2_PER_SEGMENT = 67  # UTF-16 code units per part of a concatenated SMS (6-octet UDH)

DATA_CODING_GSM7 = 0x00
DATA_CODING_UCS2 = 0x08

ESC = 0x1B

# 3GPP TS 23.038 §6.2.1, basic table in code order 0x00..0x7F; 0x1B (ESC) is a placeholder, not a char.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 §6.2.1.1, extension table, reached via ESC.
_EXT_TABLE: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_BASIC_CODE: dict[str, int] = {ch: code for code, ch in enumerate(_BASIC_TABLE) if code != ESC}
_EXT_CHAR: dict[int, str] = {code: ch for ch, code in _EXT_TABLE.items()}
_BASIC = frozenset(_BASIC_CODE)
_EXT = frozenset(_EXT_TABLE)
_GSM = _BASIC | _EXT
_ENCODE_GSM: dict[int, bytes] = {ord(ch): bytes((code,)) for ch, code in _BASIC_CODE.items()} | {
    ord(ch): bytes((ESC, code)) for ch, code in _EXT_TABLE.items()
}


class Encoding(StrEnum):
    GSM7 = "GSM7"
    UCS2 = "UCS2"


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    encoding: Encoding
    units: int  # septets for GSM7, UTF-16 code units for UCS2
    segments: int  # empty text is 1 segment of 0 units
    single_segment_limit: int
    per_segment_limit: int


@dataclass(frozen=True, slots=True)
class EncodedText:
    encoding: Encoding
    data_coding: int  # SMPP data_coding: 0x00 GSM7, 0x08 UCS2
    parts: list[bytes]  # each part's payload, without UDH


def _is_gsm(text: str) -> tuple[bool, bool]:
    """Return (is GSM7, has extension characters)."""
    chars = set(text)
    if chars <= _BASIC:
        return True, False
    if chars <= _GSM:
        return True, True
    return False, False


def _ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _gsm_cost(ch: str) -> int:
    return 2 if ch in _EXT else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _greedy(text: str, per: int, wide: bool, encoding: Encoding) -> list[str]:
    """Cut text into chunks of at most `per` units; a 2-unit character never straddles a cut."""
    if not wide:  # every character costs 1 unit
        return [text[i : i + per] for i in range(0, len(text), per)]
    cost = _gsm_cost if encoding is Encoding.GSM7 else _ucs2_cost
    chunks: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        c = cost(ch)
        if used + c > per:
            chunks.append(text[start:i])
            start, used = i, 0
        used += c
    chunks.append(text[start:])
    return chunks


def _plan(text: str) -> tuple[TextAnalysis, bool]:
    gsm, has_ext = _is_gsm(text)
    if gsm:
        encoding, single, per = Encoding.GSM7, GSM7_SINGLE_SEGMENT, GSM7_PER_SEGMENT
        units = len(text) + (sum(text.count(ch) for ch in _EXT.intersection(text)) if has_ext else 0)
        wide = has_ext
    else:
        encoding, single, per = Encoding.UCS2, UCS2_SINGLE_SEGMENT, UCS2_PER_SEGMENT
        units = _ucs2_units(text)
        wide = units != len(text)
    if units <= single:
        segments = 1
    elif not wide:
        segments = -(-units // per)
    else:
        segments = len(_greedy(text, per, wide, encoding))
    return TextAnalysis(encoding, units, segments, single, per), wide


def analyze(text: str) -> TextAnalysis:
    """Encoding, size in units and number of SMS segments needed for `text`."""
    return _plan(text)[0]


def split(text: str) -> list[str]:
    """Split `text` into the chunks sent as the parts of one (possibly concatenated) SMS.

    Always `"".join(split(t)) == t` and `len(split(t)) == analyze(t).segments`; `split("") == [""]`.
    """
    info, wide = _plan(text)
    if info.segments == 1:
        return [text]
    return _greedy(text, info.per_segment_limit, wide, info.encoding)


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM7 septets, one per octet (SMPP data_coding 0); extension chars as ESC + code.

    Raises ValueError for a character outside the GSM 03.38 basic and extension tables.
    """
    try:
        return b"".join([_ENCODE_GSM[ord(ch)] for ch in text])
    except KeyError as exc:
        raise ValueError(f"character {chr(exc.args[0])!r} is not in the GSM 03.38 alphabet") from None


def decode_gsm7(data: bytes) -> str:
    """Inverse of `encode_gsm7`. Raises ValueError for an octet >= 0x80.

    Per TS 23.038, ESC followed by a code with no extension character decodes to that code's basic
    character, ESC ESC (reserved for a further extension table) decodes to a space, and a trailing lone
    ESC (a truncated sequence) decodes to a space.
    """
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code > 0x7F:
            raise ValueError(f"octet 0x{code:02X} at offset {i} is not a GSM7 septet")
        if code != ESC:
            out.append(_BASIC_TABLE[code])
            i += 1
            continue
        if i + 1 >= n:
            out.append(" ")
            break
        nxt = data[i + 1]
        if nxt > 0x7F:
            raise ValueError(f"octet 0x{nxt:02X} at offset {i + 1} is not a GSM7 septet")
        out.append(_EXT_CHAR.get(nxt) or (" " if nxt == ESC else _BASIC_TABLE[nxt]))
        i += 2
    return "".join(out)


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE (surrogate pairs kept), as SMPP data_coding 8 sends it. Lone surrogates raise ValueError."""
    return text.encode("utf-16-be")


def decode_ucs2(data: bytes) -> str:
    """Inverse of `encode_ucs2`. Raises ValueError for malformed UTF-16-BE."""
    return data.decode("utf-16-be")


def encode_parts(text: str) -> EncodedText:
    """Encode each part of `split(text)`: GSM7 parts fit 160/153 octets, UCS2 parts 140/134 octets."""
    info, wide = _plan(text)
    chunks = [text] if info.segments == 1 else _greedy(text, info.per_segment_limit, wide, info.encoding)
    if info.encoding is Encoding.GSM7:
        return EncodedText(Encoding.GSM7, DATA_CODING_GSM7, [encode_gsm7(c) for c in chunks])
    return EncodedText(Encoding.UCS2, DATA_CODING_UCS2, [encode_ucs2(c) for c in chunks])
