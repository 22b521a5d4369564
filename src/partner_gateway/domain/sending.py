"""The rules a send request must meet to be accepted (bounds documented in docs/api.md).

Each channel's entry (channels/*/channel.py) combines them into its own check and says its
validity bounds.

Each check returns the problems it finds as (field, message) pairs, so a partner learns every
problem of a request at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from partner_gateway.domain.encoding import analyze
from partner_gateway.domain.phone import InvalidNumber, normalize_e164
from partner_gateway.domain.statuses import Channel

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ValidityBounds:
    minimum: int
    maximum: int
    default: int


SMS_MAX_SEGMENTS = 10
REFERENCE_MAX_LENGTH = 64
CALLBACK_URL_MAX_LENGTH = 2048
WHATSAPP_TEXT_MAX = 4096
WHATSAPP_TEMPLATE_PARAMETER_MAX = 1024
# A template's body is at most 1,024 characters and each placeholder ({{1}}) takes at least five:
# no approved template has more than 100 body placeholders to fill.
WHATSAPP_TEMPLATE_PARAMETERS_MAX = 100
RCS_TEXT_MAX = 3072

_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 .&_\-]{1,11}")
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,15}")
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")


def check_destination(to: str, problems: Problems) -> str:
    try:
        return normalize_e164(to)
    except InvalidNumber as error:
        problems.append(("to", str(error)))
        return to


def check_validity(bounds: ValidityBounds, channel: Channel, seconds: int | None, problems: Problems) -> int:
    """`validitySeconds` within the channel's bounds (each channel's entry states them); the
    default when absent."""
    if seconds is None:
        return bounds.default
    if not bounds.minimum <= seconds <= bounds.maximum:
        problems.append(
            ("validitySeconds", f"must be between {bounds.minimum} and {bounds.maximum} for {channel}")
        )
    return seconds


def check_reference(reference: str | None, problems: Problems) -> None:
    if reference is None:
        return
    if not 1 <= len(reference) <= REFERENCE_MAX_LENGTH:
        problems.append(("reference", f"must be 1 to {REFERENCE_MAX_LENGTH} characters"))
    elif not reference.isprintable():
        problems.append(("reference", "must not contain control characters"))


def check_callback_url(url: str | None, problems: Problems) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if len(url) > CALLBACK_URL_MAX_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            (
                "callbackUrl",
                f"must be an absolute http(s) URL of at most {CALLBACK_URL_MAX_LENGTH} characters",
            )
        )


def check_http_url(url: str | None, field: str, problems: Problems) -> None:
    if url is not None and not url.startswith(("https://", "http://")):
        problems.append((field, "must be an http(s) URL"))


def check_sms_sender(sender: str | None, problems: Problems, field: str = "from") -> None:
    if sender is None:
        return
    if _NUMERIC_SENDER.fullmatch(sender):
        return
    if _ALPHANUMERIC_SENDER.fullmatch(sender) and any(c.isalpha() for c in sender):
        return
    problems.append(
        (
            field,
            "must be up to 11 letters, digits, spaces or . & _ - (with a letter), or a number of 3-15 digits",
        )
    )


@dataclass(frozen=True, slots=True)
class SmsText:
    encoding: str
    segments: int


def check_sms_text(text: str, problems: Problems, field: str = "text") -> SmsText:
    if not text:
        problems.append((field, "must not be empty"))
        return SmsText("GSM7", 1)
    analysis = analyze(text)
    if analysis.segments > SMS_MAX_SEGMENTS:
        problems.append(
            (
                field,
                f"needs {analysis.segments} segments as {analysis.encoding.value}; at most "
                f"{SMS_MAX_SEGMENTS} are allowed ({SMS_MAX_SEGMENTS * 153} GSM-7 or "
                f"{SMS_MAX_SEGMENTS * 67} UCS-2 characters)",
            )
        )
    return SmsText(analysis.encoding.value, analysis.segments)


def check_text(text: str | None, maximum: int, field: str, problems: Problems) -> None:
    if text is None:
        return
    if not text.strip():
        problems.append((field, "must not be empty"))
    elif len(text) > maximum:
        problems.append((field, f"must be at most {maximum} characters"))


def check_template(name: str, language: str, parameters: list[str], problems: Problems) -> None:
    if not _TEMPLATE_NAME.fullmatch(name):
        problems.append(("template.name", "must be 1-512 lower-case letters, digits or underscores"))
    if not _LANGUAGE_CODE.fullmatch(language):
        problems.append(("template.language", "must be a language code such as en or en_US"))
    if len(parameters) > WHATSAPP_TEMPLATE_PARAMETERS_MAX:
        problems.append(
            (
                "template.parameters",
                f"must hold at most {WHATSAPP_TEMPLATE_PARAMETERS_MAX} parameters (it holds {len(parameters)})",
            )
        )
        return
    for index, parameter in enumerate(parameters):
        if not parameter or len(parameter) > WHATSAPP_TEMPLATE_PARAMETER_MAX:
            problems.append(
                (
                    f"template.parameters[{index}]",
                    f"must be 1 to {WHATSAPP_TEMPLATE_PARAMETER_MAX} characters",
                )
            )
