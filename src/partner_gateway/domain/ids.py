"""Identifiers the platform hands out.

A message id is `msg_` followed by a ULID: 128 bits (48 of time, 80 random), Crockford base32,
URL-safe, unique across processes without coordination, and never reused.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ulid import ULID

MESSAGE_ID_PREFIX = "msg_"
MAX_MESSAGE_ID_LENGTH = 64
_POSSIBLE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_MESSAGE_ID_LENGTH}}}")
_POSSIBLE_ID_LIST = re.compile(rf"{_POSSIBLE_ID.pattern}(?:,{_POSSIBLE_ID.pattern})*")


def could_be_message_id(text: str) -> bool:
    """False for text that cannot be an id we issued; look-ups answer "not found" without a query
    (and no stray byte, such as NUL, ever reaches the database)."""
    return _POSSIBLE_ID.fullmatch(text) is not None


def could_all_be_message_ids(comma_separated: str) -> bool:
    """True when every item of a comma-separated list passes `could_be_message_id` (none empty)."""
    return _POSSIBLE_ID_LIST.fullmatch(comma_separated) is not None


def new_message_id(epoch_ms: int) -> str:
    # The millisecond as an int, which python-ulid takes as it is. A float of seconds goes
    # through int(seconds * 1000): exact for every millisecond of this century, but about one in
    # ninety values elsewhere in ULID's range lands on the millisecond before (277167958246014).
    # Ids made in one millisecond increase, as python-ulid makes them.
    return MESSAGE_ID_PREFIX + str(ULID.from_timestamp(epoch_ms))


def new_company_id() -> str:
    return "cmp_" + str(ULID())


def new_api_key_id() -> str:
    return "key_" + str(ULID())


def new_api_key_secret() -> str:
    """The plain key shown once: 32 random bytes, so a fast hash is enough to store it."""
    return "pgw_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """How the store keeps a bearer secret we issued (an API key, a console session's token):
    its SHA-256, hex. SHA-256 suffices: each is 256 random bits, not a guessable password."""
    return hashlib.sha256(token.encode()).hexdigest()
