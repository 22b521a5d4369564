"""Bounds on a JSON body's shape, checked on its raw bytes before anything parses it. Pure, no I/O.

The JSON decoders we use (msgspec, the standard library) recurse: a 2 KB body of 1,000 nested
brackets raises RecursionError inside them, and an array of a million tiny items costs a million
objects before any field check runs. `check` walks the bytes once, without recursion, and refuses
a body nested deeper than `max_depth`, a single array or object holding more than `max_items`
members, and (with `unique_keys`) an object naming a key twice, which decoders resolve silently
by keeping the last value.

It is a scan, not a parse: strings are skipped whole (escapes included), numbers and literals are
not looked at, and malformed JSON is left for the decoder to refuse with its own message. What it
refuses is always something a decoder would have accepted or crashed on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

# A whole string (the unrolled `"(?:[^"\\]|\\.)*"`, linear on long strings), or one structural byte.
_TOKENS: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]')
# Every string, with the colon that makes it a key.
_STRINGS: Final = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")(\s*:)?')


@dataclass(frozen=True, slots=True)
class JsonBounds:
    """The largest body shape accepted: nesting depth, members of one array or object."""

    max_depth: int
    max_items: int
    unique_keys: bool = True


WEBHOOK_BOUNDS: Final = JsonBounds(max_depth=32, max_items=10_000, unique_keys=False)
"""Providers' webhook bodies. Meta's status webhook nests 8 deep and RBM's envelope 2; ten thousand
statuses of the smallest kind are 1.5 MB. Keys may repeat: the provider signed the body, its
spelling is theirs."""


class JsonOutOfBounds(ValueError):
    """The body is outside its bounds: `field` is where (a path such as `template.parameters`, or
    `body`), `message` what is wrong, in words a partner can act on."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


class _Level:
    """One open array or object: its member count, its keys (objects), and the key being read."""

    __slots__ = ("commas", "expecting_key", "key", "keys")

    def __init__(self, is_object: bool) -> None:
        self.commas = 0
        self.keys: set[bytes] | None = set() if is_object else None
        self.expecting_key = is_object
        self.key: bytes | None = None


def check(body: bytes, bounds: JsonBounds) -> None:
    """Raise JsonOutOfBounds when `body` is nested too deep, holds a collection too large, or
    (with `bounds.unique_keys`) repeats a key in one object; return otherwise."""
    if _certainly_within(body, bounds) and (not bounds.unique_keys or _keys_unique(body)):
        return
    stack: list[_Level] = []
    for token in _TOKENS.findall(body):
        first = token[0]
        if first == 0x22:  # '"': a string, a key when an object expects one
            level = stack[-1] if stack else None
            if level is not None and level.expecting_key:
                level.expecting_key = False
                level.key = _key(token)
                if level.keys is not None and bounds.unique_keys:
                    if level.key in level.keys:
                        raise JsonOutOfBounds(_path(stack), "is given twice; name each field once")
                    level.keys.add(level.key)
        elif first in b"{[":
            if len(stack) >= bounds.max_depth:
                raise JsonOutOfBounds(
                    _path(stack) if stack else "body", f"nests deeper than {bounds.max_depth} levels"
                )
            stack.append(_Level(first == 0x7B))
        elif first in b"}]":
            if stack:
                stack.pop()
        elif first == 0x2C and stack:  # ','
            level = stack[-1]
            level.commas += 1
            if level.commas >= bounds.max_items:
                level.key = None  # the path names the collection, not its last member
                raise JsonOutOfBounds(_path(stack), f"must hold at most {bounds.max_items} items")
            if level.keys is not None:
                level.expecting_key = True


def _certainly_within(body: bytes, bounds: JsonBounds) -> bool:
    """Whether byte counts alone prove the bounds hold (no brackets and commas enough to break
    them, strings' included): the common small body then costs three counts in C, not a scan."""
    return body.count(b"[") + body.count(b"{") <= bounds.max_depth and body.count(b",") < bounds.max_items


def _keys_unique(body: bytes) -> bool:
    """Whether no key appears twice anywhere in the body (so not twice in one object), all keys
    written without escapes: a send's body then costs one regex pass, not a scan (5 µs to 1)."""
    keys = [string for string, colon in _STRINGS.findall(body) if colon]
    return len(set(keys)) == len(keys) and not any(b"\\" in key for key in keys)


def _key(token: bytes) -> bytes:
    """A key as its characters: `"a"` and `"\\u0061"` are the same key."""
    if b"\\" not in token:
        return token[1:-1]
    try:
        return str(json.loads(token)).encode("utf-8", "surrogatepass")
    except ValueError:  # a malformed escape: the decoder refuses the body afterwards
        return token


def _path(stack: list[_Level]) -> str:
    """Where the scan is, as field names joined by dots (`body` at the top)."""
    names = [level.key.decode("utf-8", "replace") for level in stack if level.key is not None]
    return ".".join(names) or "body"
