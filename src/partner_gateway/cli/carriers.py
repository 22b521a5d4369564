"""SMS carriers for operators: `routes` (the route table in force) and `carriers` (each carrier's
binds, window, rates and last error, as the workers last wrote them to the store)."""

from __future__ import annotations

from typing import Any

import typer

from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.cli.common import JsonFlag, settings_or_exit, show, with_runtime
from partner_gateway.config import Settings
from partner_gateway.domain.routing import Route, RouteTable
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.bind_slots import BindSlot, leases
from partner_gateway.store.repositories.carrier_stats import CarrierRow, read_all


def _route_json(route: Route) -> dict[str, Any]:
    weights = route.weights or (None,) * len(route.carriers)
    return {
        "prefix": route.prefix,
        "company": route.company,
        "sender": route.sender,
        "kind": route.kind,
        "carriers": [{"name": n, "weight": w} for n, w in zip(route.carriers, weights, strict=True)],
    }


def routes(as_json: JsonFlag = False) -> None:
    """The SMS route table in force: PARTNER_GATEWAY_SMS_ROUTES, or every SMS to the first carrier."""
    settings = settings_or_exit()
    table: RouteTable = settings.route_table()
    source = "PARTNER_GATEWAY_SMS_ROUTES" if settings.sms_routes is not None else "default"
    if not settings.smpp_carriers:
        text = "no SMPP carrier configured: the built-in SMSC simulator takes every SMS"
    else:
        lines = [f"SMS routes ({source}; the longest prefix wins, then company and sender):"]
        lines += [f"  {route.describe()}" for route in table.routes]
        unrouted = [
            c.name for c in settings.smpp_carriers if not any(c.name in r.carriers for r in table.routes)
        ]
        if unrouted:
            lines.append(f"not routed (not bound): {', '.join(unrouted)}")
        text = "\n".join(lines)
    show({"source": source, "routes": [_route_json(route) for route in table.routes]}, as_json, text)


def _carrier_json(
    carrier: SmppCarrier, slots: list[BindSlot], rows: list[CarrierRow], settings: Settings
) -> dict[str, Any]:
    now = now_ms()
    stale_ms = int(settings.smpp_bind_lease_seconds * 1000)  # three report intervals
    return {
        "name": carrier.name,
        "address": f"{carrier.host}:{carrier.port}",
        "binds": carrier.binds,
        "windowPerBind": carrier.window,
        "throughputPerSecond": carrier.throughput_per_second,
        "bindSlots": [
            {
                "slot": slot.slot,
                "holder": slot.holder,
                "live": slot.expires_at >= now,
                "since": format_ms(slot.acquired_at),
                "leaseUntil": format_ms(slot.expires_at),
            }
            for slot in slots
        ],
        "workers": [
            {
                "holder": row.sample.holder,
                "health": row.sample.health,
                "bindsHeld": row.sample.binds_held,
                "bindsBound": row.sample.binds_bound,
                "windowInUse": row.sample.in_flight,
                "window": row.sample.window,
                "submitsPerSecond": row.sample.submits_per_second,
                "receiptsPerSecond": row.sample.receipts_per_second,
                "submitsTotal": row.sample.submits_total,
                "receiptsTotal": row.sample.receipts_total,
                "lastError": row.sample.last_error,
                "lastErrorAt": format_ms(row.sample.last_error_at) if row.sample.last_error_at else None,
                "reportedAt": format_ms(row.updated_at),
                "stale": now - row.updated_at > stale_ms,
            }
            for row in rows
        ],
    }


def _carrier_text(data: dict[str, Any]) -> str:
    lines = [
        f"{data['name']} ({data['address']}): {data['binds']} bind(s), window {data['windowPerBind']} per bind, "
        f"throughput {data['throughputPerSecond'] or 'unlimited'}/s per bind"
    ]
    for slot in data["bindSlots"]:
        state = "held" if slot["live"] else "lease ran out"
        lines.append(f"  bind #{slot['slot']}: {slot['holder']} ({state}, since {slot['since']})")
    if not data["bindSlots"]:
        lines.append("  no bind held by any worker")
    for worker in data["workers"]:
        stale = " (stale: the worker stopped reporting)" if worker["stale"] else ""
        lines.append(
            f"  worker {worker['holder']}{stale}: {worker['health']}, {worker['bindsBound']}/{worker['bindsHeld']} "
            f"bound, window {worker['windowInUse']}/{worker['window']} in use, "
            f"{worker['submitsPerSecond']:g} submits/s, {worker['receiptsPerSecond']:g} receipts/s "
            f"({worker['submitsTotal']} and {worker['receiptsTotal']} since it started; as of {worker['reportedAt']})"
        )
        if worker["lastError"]:
            lines.append(f"    last error {worker['lastErrorAt']}: {worker['lastError']}")
    return "\n".join(lines)


def carriers(as_json: JsonFlag = False) -> None:
    """Each SMPP carrier: which worker holds its binds, the window in use, submit and receipt
    rates and the last error, as the workers last wrote them (every bind-lease renewal)."""

    async def work(runtime: Runtime) -> tuple[Settings, dict[str, list[BindSlot]], list[CarrierRow]]:
        settings = runtime.settings
        async with runtime.database.read() as connection:
            slots = {c.name: await leases(connection, c.name) for c in settings.smpp_carriers}
            return settings, slots, await read_all(connection)

    settings, slots, rows = with_runtime(work)
    data = [
        _carrier_json(
            carrier, slots[carrier.name], [r for r in rows if r.sample.carrier == carrier.name], settings
        )
        for carrier in settings.smpp_carriers
    ]
    text = "\n".join(_carrier_text(item) for item in data) or (
        "no SMPP carrier configured: `serve` starts the built-in SMSC simulator"
    )
    show({"carriers": data}, as_json, text)


def register(app: typer.Typer) -> None:
    app.command("routes")(routes)
    app.command("carriers")(carriers)
