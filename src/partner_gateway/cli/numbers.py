"""The numbers, short codes, WhatsApp numbers and RBM agents a company receives on:
`company numbers add|remove|list`. An inbound message goes to the company that owns its
recipient on its channel; one to a number nobody owns is logged and counted, not stored."""

from __future__ import annotations

from typing import Annotated

import typer

from partner_gateway.cli.common import JsonFlag, fail, show, with_runtime
from partner_gateway.domain.inbound import MAX_NUMBER, normalize_number
from partner_gateway.domain.statuses import CHANNEL_BY_NAME, Channel
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import inbound
from partner_gateway.store.repositories.companies import CompanyRepository

numbers_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Numbers and short codes a company receives on (inbound messages, STOP).",
    no_args_is_help=True,
)

ChannelOption = Annotated[
    str,
    typer.Option(
        "--channel",
        help="SMS (a number or short code), WHATSAPP (the business number), RCS (the RBM agent id).",
    ),
]


def _channel(value: str, as_json: bool) -> Channel:
    channel = CHANNEL_BY_NAME.get(value.strip().upper())
    if channel is None:
        fail(f"--channel must be one of {', '.join(c.value for c in Channel)}", as_json, code=2)
    return channel


def _number(value: str, as_json: bool) -> str:
    number = normalize_number(value)
    if not number or len(number) > MAX_NUMBER or not number.isprintable():
        fail(
            f"{value!r} is not a number, short code or agent id (at most {MAX_NUMBER} characters)",
            as_json,
            code=2,
        )
    return number


@numbers_app.command("add")
def numbers_add(
    company_id: str, number: str, channel: ChannelOption = "SMS", as_json: JsonFlag = False
) -> None:
    """Assign NUMBER on --channel to the company (unique per channel)."""
    wanted, normal = _channel(channel, as_json), _number(number, as_json)

    async def work(runtime: Runtime) -> str:
        async with runtime.database.write() as connection:
            if await CompanyRepository(connection).get(company_id) is None:
                return "no-company"
            try:
                added = await inbound.assign_number(connection, company_id, wanted, normal, now_ms())
            except inbound.NumberTaken as taken:
                return f"taken:{taken.owner}"
        return "added" if added else "unchanged"

    outcome = with_runtime(work)
    if outcome == "no-company":
        fail(f"no company {company_id!r}", as_json)
    if outcome.startswith("taken:"):
        fail(f"{normal} on {wanted.value} is assigned to company {outcome.removeprefix('taken:')}", as_json)
    data = {"companyId": company_id, "channel": wanted.value, "number": normal, "added": outcome == "added"}
    said = "assigned" if outcome == "added" else "was already assigned"
    show(data, as_json, f"{normal} on {wanted.value} {said} to {company_id}")


@numbers_app.command("remove")
def numbers_remove(
    company_id: str, number: str, channel: ChannelOption = "SMS", as_json: JsonFlag = False
) -> None:
    """Take NUMBER on --channel away from the company."""
    wanted, normal = _channel(channel, as_json), _number(number, as_json)

    async def work(runtime: Runtime) -> bool:
        async with runtime.database.write() as connection:
            return await inbound.release_number(connection, company_id, wanted, normal)

    if not with_runtime(work):
        fail(f"{normal} on {wanted.value} is not assigned to {company_id}", as_json)
    show({"companyId": company_id, "channel": wanted.value, "number": normal, "removed": True}, as_json,
         f"{normal} on {wanted.value} removed from {company_id}")  # fmt: skip


@numbers_app.command("list")
def numbers_list(company_id: str, as_json: JsonFlag = False) -> None:
    """The company's numbers, by channel."""

    async def work(runtime: Runtime) -> list[tuple[str, str, int]]:
        async with runtime.database.read() as connection:
            return await inbound.numbers_of(connection, company_id)

    found = with_runtime(work)
    data = [
        {"channel": channel, "number": number, "assignedAt": format_ms(at)} for channel, number, at in found
    ]
    lines = [f"{channel:9} {number}  assigned {format_ms(at)}" for channel, number, at in found]
    show(data, as_json, "\n".join(lines) or f"no numbers assigned to {company_id}")
