"""Recognising the receipt of a hand-over that got no answer (docs/delivery.md, "the one window").

A message written to a carrier that never answered may or may not have reached it. If it did,
its receipt names a carrier id no submission has, and only the receipt's destination and the
first characters of its text can tie it to the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def sole_match(candidates: Sequence[T]) -> T | None:
    """The one candidate, or None when there are none or several.

    A match that is not unique is never guessed: two unanswered messages with the same
    destination and beginning are told apart by nothing, and pinning one's receipt on the other
    would show a message DELIVERED that may never have been sent. Both stay UNKNOWN instead.
    """
    return candidates[0] if len(candidates) == 1 else None
