"""E.164 destinations, validated with Google's libphonenumber metadata."""

from __future__ import annotations

import phonenumbers

E164_MAX_DIGITS = 15


class InvalidNumber(ValueError):
    """The text is not a valid, possible E.164 number; the message says why."""


def normalize_e164(text: str) -> str:
    """Return the number in canonical E.164 (`+4915112345678`) or raise InvalidNumber.

    Only the strict `+` form is accepted: a partner's national format is ambiguous without a
    region, and silently guessing one sends messages to the wrong country.
    """
    if not text.startswith("+"):
        raise InvalidNumber("must be in E.164 format, starting with '+' and the country code")
    digits = text[1:]
    if not digits.isascii() or not digits.isdigit():
        raise InvalidNumber("must contain only digits after '+'")
    if len(digits) > E164_MAX_DIGITS:
        raise InvalidNumber(f"must have at most {E164_MAX_DIGITS} digits")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber(f"is not a phone number ({error._msg})") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber("is not a possible number for its country")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber("is not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
