"""The SMS route table: matching, splits, failover order and the table's checks."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.domain.routing import (
    Health,
    Route,
    RoutedMessage,
    RouteError,
    RouteTable,
    decide,
    split_point,
)

CARRIERS = ["a", "b", "c", "d"]


def message(to: str = "+4915112345678", company: str = "cmp_1", sender: str | None = None) -> RoutedMessage:
    return RoutedMessage("msg_1", company, to, sender)


TABLE = RouteTable.build(
    [
        Route("", ("a",)),
        Route("49", ("b",)),
        Route("4915", ("c", "a")),  # failover: c, then a
        Route("49", ("d",), company="cmp_2"),
        Route("49", ("a",), sender="ACME"),
        Route("49", ("c",), company="cmp_2", sender="ACME"),
        Route("1", ("a", "b"), weights=(70, 30)),
    ],
    CARRIERS,
)


@pytest.mark.parametrize(
    ("to", "company", "sender", "expected"),
    [
        ("+33612345678", "cmp_1", None, ["a"]),  # only the catch-all matches
        ("+4930123456", "cmp_1", None, ["b"]),  # 49
        ("+4915112345678", "cmp_1", None, ["c", "a"]),  # the longest prefix wins over 49
        ("+4915112345678", "cmp_2", None, ["c", "a"]),  # ... even over a company's shorter route
        ("+4930123456", "cmp_2", None, ["d"]),  # same prefix: the company's route
        ("+4930123456", "cmp_1", "ACME", ["a"]),  # same prefix: the sender's route
        ("+4930123456", "cmp_2", "ACME", ["c"]),  # company and sender beat either alone
        ("+4930123456", "cmp_3", "OTHER", ["b"]),  # narrowed routes that do not match are skipped
    ],
)
def test_the_most_specific_route_decides(
    to: str, company: str, sender: str | None, expected: list[str]
) -> None:
    assert decide(message(to, company, sender), TABLE, {}) == expected


def test_no_route_gives_no_carrier() -> None:
    table = RouteTable.build([Route("44", ("a",))], CARRIERS)
    assert decide(message("+4915112345678"), table, {}) == []


def test_unhealthy_carriers_move_to_the_end_in_their_order() -> None:
    table = RouteTable.build([Route("", ("a", "b", "c", "d"))], CARRIERS)
    health = {"a": Health.DOWN, "b": Health.THROTTLED, "c": Health.UP}
    assert decide(message(), table, health) == ["c", "d", "a", "b"]
    # Held by another worker is not unhealthy: that worker sends, this one hands the work back.
    assert decide(message(), table, {"a": Health.ELSEWHERE}) == ["a", "b", "c", "d"]
    everything_down = dict.fromkeys(CARRIERS, Health.DOWN)
    assert decide(message(), table, everything_down) == ["a", "b", "c", "d"]


def test_a_split_tries_the_others_heavier_first() -> None:
    table = RouteTable.build([Route("", ("a", "b", "c"), weights=(1, 5, 3))], CARRIERS)
    for number in range(200):
        order = decide(RoutedMessage(f"msg_{number}", "cmp_1", "+4915112345678"), table, {})
        assert sorted(order) == ["a", "b", "c"]
        rest = order[1:]
        weight = {"a": 1, "b": 5, "c": 3}
        assert [weight[name] for name in rest] == sorted((weight[name] for name in rest), reverse=True)


def test_the_default_table_sends_everything_to_the_first_carrier() -> None:
    table = RouteTable.default(["first", "second"])
    assert decide(message("+15551234567"), table, {}) == ["first"]
    assert RouteTable.default([]).routes == ()


@pytest.mark.parametrize(
    ("routes", "error"),
    [
        ([Route("44", ("zz",))], "route 1 (44): unknown carrier zz"),
        (
            [Route("44", ("a",)), Route("44", ("b",))],
            "route 2 (44): same prefix, company and sender as route 1",
        ),
        ([Route("", ("a", "b"), weights=(1, 0))], "weights must be greater than 0"),
        ([Route("", ("a", "b"), weights=(1, -2))], "weights must be greater than 0"),
        ([Route("", ("a", "b"), weights=(1,))], "one weight per carrier"),
        ([Route("4a", ("a",))], "prefix must be digits"),
        ([Route("", ("a", "a"))], "names a carrier twice"),
        ([Route("", ())], "names no carrier"),
    ],
)
def test_a_table_that_cannot_be_used_is_refused(routes: list[Route], error: str) -> None:
    with pytest.raises(RouteError, match=re.escape(error)):
        RouteTable.build(routes, CARRIERS)


def test_identical_prefixes_for_different_companies_are_not_an_overlap() -> None:
    RouteTable.build([Route("44", ("a",), company="x"), Route("44", ("b",), company="y")], CARRIERS)


# A thousand ids, fixed: the split's shares over them are what the hash gives, not luck.
THOUSAND = [str(number) for number in range(1000)]


@given(st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=4))
def test_a_split_holds_its_weights_over_a_thousand_messages(weights: list[int]) -> None:
    names = CARRIERS[: len(weights)]
    table = RouteTable.build([Route("", tuple(names), weights=tuple(map(float, weights)))], CARRIERS)
    first = Counter(decide(RoutedMessage(mid, "cmp_1", "+4915112345678"), table, {})[0] for mid in THOUSAND)
    total = sum(weights)
    for name, weight in zip(names, weights, strict=True):
        assert abs(first[name] / 1000 - weight / total) < 0.04, (name, first, weights)


@given(
    st.text(alphabet="0123456789abcdef_", min_size=1, max_size=30),
    st.dictionaries(st.sampled_from(CARRIERS), st.sampled_from(list(Health))),
)
def test_a_decision_is_a_pure_function_and_a_permutation_of_the_route(
    message_id: str, health: dict[str, Health]
) -> None:
    table = RouteTable.build([Route("", tuple(CARRIERS), weights=(4, 3, 2, 1))], CARRIERS)
    routed = RoutedMessage(message_id, "cmp_1", "+4915112345678")
    order = decide(routed, table, health)
    assert order == decide(routed, table, dict(health))
    assert sorted(order) == sorted(CARRIERS)
    ranks = [0 if health.get(name, Health.UP) in (Health.UP, Health.ELSEWHERE) else 1 for name in order]
    assert ranks == sorted(ranks)


@given(st.text(min_size=1, max_size=40))
def test_split_points_lie_in_the_unit_interval(message_id: str) -> None:
    assert 0 <= split_point(message_id) < 1


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_the_longest_matching_prefix_wins(digits: str) -> None:
    prefixes = ["", "4", "49", "491", "4915", "33", "1"]
    table = RouteTable.build(
        [Route(p, (f"c{i}",)) for i, p in enumerate(prefixes)], [f"c{i}" for i in range(7)]
    )
    best = max((p for p in prefixes if digits.startswith(p)), key=len)
    assert decide(RoutedMessage("m", "cmp_1", "+" + digits), table, {}) == [f"c{prefixes.index(best)}"]


ROUTE_KEYS = st.tuples(
    st.text(alphabet="0149", max_size=4),
    st.sampled_from([None, "cmp_1", "cmp_2"]),
    st.sampled_from([None, "ACME"]),
)


@given(
    st.lists(ROUTE_KEYS, unique=True, max_size=25),
    st.text(alphabet="0149", min_size=1, max_size=12),
    st.sampled_from(["cmp_1", "cmp_2", "cmp_3"]),
    st.sampled_from([None, "ACME", "OTHER"]),
)
def test_the_route_found_is_the_most_specific_that_matches(
    keys: list[tuple[str, str | None, str | None]], digits: str, company: str, sender: str | None
) -> None:
    routes = [Route(prefix, (CARRIERS[n % 4],), company=c, sender=s) for n, (prefix, c, s) in enumerate(keys)]
    table = RouteTable.build(routes, CARRIERS)
    matching = [r for r in routes if r.matches(digits, company, sender)]
    expected = max(matching, key=lambda r: r.specificity) if matching else None
    assert table.route_for(RoutedMessage("m", company, "+" + digits, sender)) is expected
