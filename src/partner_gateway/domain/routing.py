"""SMS routing: which carriers a message is offered to, in which order.

A route table is a list of routes. A route matches a message by the destination's leading digits
(`prefix`, "" matches every number), optionally narrowed to one company and one sender. Of the
routes that match, the longest prefix wins; at the same prefix a route naming the company and the
sender beats one naming only the company, which beats one naming only the sender, which beats one
naming neither. Two routes with the same prefix, company and sender are refused when the table is
built, so a decision never depends on the order routes were written in.

A route sends to one carrier, splits by weight, or lists carriers in failover order:

    {"prefix": "44", "carrier": "uk-a"}
    {"prefix": "1", "split": {"us-a": 70, "us-b": 30}}
    {"prefix": "49", "company": "cmp_1", "failover": ["de-a", "de-b"]}

`decide(message, table, health)` is a pure function: the same message, table and health give the
same list. A split picks its first carrier from a hash of the message id (so every attempt of a
message starts at the same carrier, and the split holds over many messages without any state);
the other carriers of the split follow, heavier first. Carriers that cannot take work now
(`Health.DOWN`: no bound session; `Health.THROTTLED`: paused past the carrier's bound) move after
the healthy ones, keeping their order, so a message goes to the next carrier of its route rather
than waiting. `Health.ELSEWHERE` (another worker of the cluster holds the carrier's binds) keeps its
place: that worker sends, this one hands the message back.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_CARRIER_PREFIX = ""


class Health(enum.Enum):
    UP = "up"  # this worker holds a bound session
    ELSEWHERE = "elsewhere"  # other workers hold every bind of the carrier
    THROTTLED = "throttled"  # bound, but paused by the carrier past the bound
    DOWN = "down"  # this worker holds binds, none bound (or the carrier is not reachable)


HEALTHY = frozenset({Health.UP, Health.ELSEWHERE})


class RouteError(ValueError):
    """A route table that cannot be used; the message names the route and the problem."""


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the table. `carriers` with `weights` (a split), or in failover order (no weights)."""

    prefix: str
    carriers: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    company: str | None = None
    sender: str | None = None

    @property
    def kind(self) -> str:
        if self.weights is not None:
            return "split"
        return "carrier" if len(self.carriers) == 1 else "failover"

    @property
    def specificity(self) -> tuple[int, int, int]:
        return (len(self.prefix), self.company is not None, self.sender is not None)

    def matches(self, digits: str, company: str, sender: str | None) -> bool:
        return (
            digits.startswith(self.prefix)
            and (self.company is None or self.company == company)
            and (self.sender is None or self.sender == sender)
        )

    def describe(self) -> str:
        """The route as one line: `44 company=cmp_1 -> failover uk-a, uk-b`."""
        where = self.prefix or "*"
        if self.company is not None:
            where += f" company={self.company}"
        if self.sender is not None:
            where += f" sender={self.sender}"
        if self.weights is not None:
            total = sum(self.weights)
            to = ", ".join(f"{c} {w / total:.0%}" for c, w in zip(self.carriers, self.weights, strict=True))
            return f"{where} -> split {to}"
        return f"{where} -> {self.kind} {', '.join(self.carriers)}"


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """What routing reads of a message."""

    message_id: str
    company_id: str
    to: str  # E.164, "+4915112345678"
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...]
    carriers: frozenset[str] = field(default_factory=frozenset)  # every carrier configured
    # Routes by prefix, the most specific first, and the prefix lengths longest first: a look-up
    # costs one dict probe per distinct length, however many routes there are.
    _by_prefix: dict[str, tuple[Route, ...]] = field(init=False, repr=False, compare=False)
    _lengths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_prefix: dict[str, list[Route]] = {}
        for route in self.routes:
            by_prefix.setdefault(route.prefix, []).append(route)
        ordered = {
            p: tuple(sorted(rs, key=lambda r: r.specificity, reverse=True)) for p, rs in by_prefix.items()
        }
        object.__setattr__(self, "_by_prefix", ordered)
        object.__setattr__(self, "_lengths", tuple(sorted({len(p) for p in ordered}, reverse=True)))

    @classmethod
    def build(cls, routes: Iterable[Route], carriers: Sequence[str]) -> RouteTable:
        """The table, checked: every route names configured carriers, each at most once, weights
        are positive, digits only in prefixes, and no two routes match the same messages."""
        known = frozenset(carriers)
        seen: dict[tuple[str, str | None, str | None], int] = {}
        checked: list[Route] = []
        for number, route in enumerate(routes, start=1):
            label = f"route {number} ({route.prefix or '*'})"
            if route.prefix and not (route.prefix.isascii() and route.prefix.isdigit()):
                raise RouteError(f"{label}: prefix must be digits (the E.164 number without '+')")
            if not route.carriers:
                raise RouteError(f"{label}: names no carrier")
            unknown = [name for name in route.carriers if name not in known]
            if unknown:
                raise RouteError(
                    f"{label}: unknown carrier {', '.join(unknown)}; configured: {', '.join(sorted(known))}"
                )
            if len(set(route.carriers)) != len(route.carriers):
                raise RouteError(f"{label}: names a carrier twice")
            if route.weights is not None:
                if len(route.weights) != len(route.carriers):
                    raise RouteError(f"{label}: one weight per carrier is needed")
                if any(not weight > 0 for weight in route.weights):
                    raise RouteError(f"{label}: weights must be greater than 0")
            key = (route.prefix, route.company, route.sender)
            if key in seen:
                raise RouteError(
                    f"{label}: same prefix, company and sender as route {seen[key]}; "
                    "which one applies would depend on their order"
                )
            seen[key] = number
            checked.append(route)
        return cls(tuple(checked), known)

    @classmethod
    def default(cls, carriers: Sequence[str]) -> RouteTable:
        """No table configured: every message to the first carrier (the gateway before routing)."""
        return cls.build([Route(DEFAULT_CARRIER_PREFIX, (carriers[0],))], carriers) if carriers else cls(())

    def route_for(self, message: RoutedMessage) -> Route | None:
        """The longest prefix first, then company and sender before either alone (module docstring)."""
        digits = message.to.lstrip("+")
        for length in self._lengths:
            if length > len(digits):
                continue
            for route in self._by_prefix.get(digits[:length], ()):
                if route.matches(digits, message.company_id, message.sender):
                    return route
        return None


def split_point(message_id: str) -> float:
    """Where in [0, 1) a message falls for a weighted split: a hash of its id, so every attempt of
    a message makes the same choice and no state is shared between workers."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _split_order(route: Route, message_id: str) -> list[str]:
    weights = route.weights
    assert weights is not None
    total = sum(weights)
    point = split_point(message_id) * total
    chosen = len(route.carriers) - 1  # float rounding at the very top lands on the last
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight
        if point < running:
            chosen = index
            break
    rest = sorted((i for i in range(len(weights)) if i != chosen), key=lambda i: -weights[i])
    return [route.carriers[chosen], *(route.carriers[i] for i in rest)]


def decide(message: RoutedMessage, table: RouteTable, health: Mapping[str, Health]) -> list[str]:
    """The carriers to try for `message`, in order; empty when no route matches. A carrier absent
    from `health` counts as UP."""
    route = table.route_for(message)
    if route is None:
        return []
    order = _split_order(route, message.message_id) if route.weights is not None else list(route.carriers)
    healthy = [name for name in order if health.get(name, Health.UP) in HEALTHY]
    return healthy + [name for name in order if name not in healthy]
