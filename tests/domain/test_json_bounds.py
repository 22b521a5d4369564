"""The JSON shape bound (domain/json_bounds.py) against a reference computed from the parsed value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.domain.json_bounds import JsonBounds, JsonOutOfBounds, check

BOUNDS = JsonBounds(max_depth=6, max_items=5)


def reference(text: str) -> tuple[int, int, bool]:
    """Depth, largest collection and whether some object repeats a key, from the parsed value."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        if len({key for key, _ in items}) < len(items):
            repeated = True
        return {"__members__": [value for _, value in items]}

    def shape(value: Any) -> tuple[int, int]:
        if isinstance(value, dict):
            members = value["__members__"]
        elif isinstance(value, list):
            members = value
        else:
            return 0, 0
        inner = [shape(member) for member in members]
        return 1 + max((d for d, _ in inner), default=0), max([len(members), *(n for _, n in inner)])

    depth, items = shape(json.loads(text, object_pairs_hook=pairs))
    return depth, items, repeated


keys = st.sampled_from(["a", "b", "\u00e9", 'q"uote', "back\\slash", ""])
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab,[]{}:"\\\u00e9 ', max_size=6),
    lambda inner: st.lists(inner, max_size=7) | st.lists(st.tuples(keys, inner), max_size=7),
    max_leaves=40,
)


def render(value: Any, ensure_ascii: bool) -> str:
    """JSON text of `value`, where a list of (key, value) tuples is an object that may repeat keys."""
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        members = ", ".join(
            f"{json.dumps(key, ensure_ascii=ensure_ascii)}: {render(item, ensure_ascii)}"
            for key, item in value
        )
        return "{" + members + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item, ensure_ascii) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


@given(values, st.booleans())
def test_the_scan_agrees_with_the_parsed_value(value: Any, ensure_ascii: bool) -> None:
    text = render(value, ensure_ascii)
    depth, items, repeated = reference(text)
    within = depth <= BOUNDS.max_depth and items <= BOUNDS.max_items and not repeated
    try:
        check(text.encode(), BOUNDS)
    except JsonOutOfBounds:
        assert not within, text
    else:
        assert within, text


@given(values)
def test_without_unique_keys_only_the_shape_counts(value: Any) -> None:
    text = render(value, ensure_ascii=False)
    depth, items, _ = reference(text)
    bounds = JsonBounds(max_depth=BOUNDS.max_depth, max_items=BOUNDS.max_items, unique_keys=False)
    try:
        check(text.encode(), bounds)
    except JsonOutOfBounds:
        assert depth > bounds.max_depth or items > bounds.max_items
    else:
        assert depth <= bounds.max_depth
        assert items <= bounds.max_items


@given(st.binary(max_size=200))
def test_any_bytes_are_scanned_without_error(raw: bytes) -> None:
    """Malformed JSON is the decoder's to refuse: the scan only ever passes or names a field."""
    refused = None
    try:
        check(raw, BOUNDS)
    except JsonOutOfBounds as out:
        refused = out
    if refused is not None:
        assert refused.field
        assert refused.message


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"[" * 1000 + b"]" * 1000, "body", "nests deeper than 32 levels"),
        (
            b'{"to": "x", "template": {"parameters": ' + b"[" * 40 + b"]" * 40 + b"}}",
            "template.parameters",
            "nests deeper than 32 levels",
        ),
        (b'{"ids": [' + b'"a",' * 10_000 + b'"a"]}', "ids", "must hold at most 10000 items"),
        (b'{"text": "a", "to": "b", "text": "c"}', "text", "is given twice; name each field once"),
        (b'{"t\\u0065xt": "a", "text": "c"}', "text", "is given twice; name each field once"),
        (
            b'{"template": {"name": "a", "name": "b"}}',
            "template.name",
            "is given twice; name each field once",
        ),
    ],
)
def test_what_is_refused_is_named(body: bytes, field: str, message: str) -> None:
    with pytest.raises(JsonOutOfBounds) as refused:
        check(body, JsonBounds(max_depth=32, max_items=10_000))
    assert (refused.value.field, refused.value.message) == (field, message)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": {"a": {"a": 1}}}',  # the same key in different objects
        b'[{"type": "reply", "text": "a"}, {"type": "reply", "text": "b"}]',
        b'{"text": "{\\"text\\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "x": ",,,,"}',  # inside strings
        b"[" * 32 + b"]" * 32,
    ],
)
def test_what_is_within_passes(body: bytes) -> None:
    check(body, JsonBounds(max_depth=32, max_items=3))
