"""Companies and their API keys, callback settings and rate limits: `company
create|list|show|callbacks|limits|numbers`, `apikey create|list|revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from partner_gateway.cli.common import JsonFlag, fail, settings_or_exit, show, with_runtime
from partner_gateway.cli.numbers import numbers_app
from partner_gateway.domain.rate_limits import Limit, parse_limit
from partner_gateway.domain.rate_limits import Traffic as LimitedTraffic
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository
from partner_gateway.store.repositories.operator import CompanySummary, OperatorQueries, Traffic
from partner_gateway.store.repositories.rate_limits import CompanyLimits

company_app = typer.Typer(rich_markup_mode="markdown", help="Manage companies.", no_args_is_help=True)
company_app.add_typer(numbers_app, name="numbers")
apikey_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Manage API keys (several per company, for rotation).",
    no_args_is_help=True,
)


@company_app.command("create")
def company_create(name: str, as_json: JsonFlag = False) -> None:
    """Create a company and its first API key (shown once)."""

    async def work(runtime: Runtime) -> dict[str, str]:
        now = now_ms()
        async with runtime.database.write() as connection:
            repository = CompanyRepository(connection)
            company = await repository.create(name, now)
            issued = await repository.issue_key(company.id, now, label="initial")
        return {"companyId": company.id, "apiKey": issued.plain_key, "apiKeyId": issued.info.id}

    result = with_runtime(work, tell_store=True)
    show(
        result,
        as_json,
        f"company {result['companyId']}\napi key {result['apiKey']} (id {result['apiKeyId']}); "
        "it is shown only now",
    )


WindowOption = Annotated[int, typer.Option("--days", min=1, max=3660, help="The traffic of the last N days.")]


@company_app.command("list")
def company_list(as_json: JsonFlag = False) -> None:
    """Every company, oldest first, with its keys."""

    async def work(runtime: Runtime) -> list[CompanySummary]:
        async with runtime.database.read() as connection:
            return await OperatorQueries(connection).companies()

    found = with_runtime(work)
    data = [_company_json(company) for company in found]
    lines = [
        f"{company.id}  {company.name}  created {format_ms(company.created_at)}, "
        f"{company.active_keys} active keys, {company.revoked_keys} revoked"
        for company in found
    ]
    show(data, as_json, "\n".join(lines) or "no companies")


@company_app.command("show")
def company_show(company_id: str, days: WindowOption = 7, as_json: JsonFlag = False) -> None:
    """One company: its keys and its messages of the last days by channel and status."""

    async def work(runtime: Runtime) -> tuple[CompanySummary, Traffic] | None:
        end = now_ms()
        async with runtime.database.read() as connection:
            queries = OperatorQueries(connection)
            found = await queries.companies(company_id)
            if not found:
                return None
            return found[0], await queries.traffic(company_id, end - days * 86_400_000, end + 1)

    result = with_runtime(work)
    if result is None:
        fail(f"no company {company_id!r}", as_json)
    company, traffic = result
    data = {**_company_json(company), "days": days, "messages": traffic.total, "traffic": traffic.counts}
    lines = [
        f"{company.id}  {company.name}  created {format_ms(company.created_at)}",
        f"  keys: {company.active_keys} active, {company.revoked_keys} revoked",
        f"  messages of the last {days} days: {traffic.total}",
        *(
            f"    {channel:9} "
            + ", ".join(f"{status} {count}" for status, count in sorted(by_status.items()))
            for channel, by_status in sorted(traffic.counts.items())
        ),
    ]
    show(data, as_json, "\n".join(lines))


def _company_json(company: CompanySummary) -> dict[str, object]:
    return {
        "companyId": company.id,
        "name": company.name,
        "createdAt": format_ms(company.created_at),
        "activeKeys": company.active_keys,
        "revokedKeys": company.revoked_keys,
    }


@company_app.command("callbacks")
def company_callbacks(
    company_id: str,
    url: Annotated[
        str | None, typer.Option(help="The default callback URL (absolute http(s), public host).")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the default URL (the secret stays).")
    ] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Make a new signing secret; the old one signs for 24 h.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set a company's callback URL (SPEC §5); the signing secret, when this makes one, is shown
    once. With neither --url nor --clear the URL stays as it is."""
    from partner_gateway.callbacks.urls import RefusedUrl
    from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository

    if url is not None and clear:
        fail("give --url or --clear, not both", as_json)

    async def work(runtime: Runtime) -> dict[str, object] | str:
        if url is not None:
            try:
                await runtime.callback_urls.check(url)
            except RefusedUrl as refused:
                return f"the URL {refused.reason}"
        async with runtime.database.write() as connection:
            if await CompanyRepository(connection).get(company_id) is None:
                return f"no company {company_id!r}"
            repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
            current = await repository.get(company_id)
            wanted = None if clear else url if url is not None else current.url if current else None
            if current is not None and wanted == current.url and not rotate_secret and not clear:
                return {"url": current.url, "secretSet": current.secret_set}  # nothing to change
            change = await repository.set_url(company_id, wanted, now_ms(), rotate_secret=rotate_secret)
        answer: dict[str, object] = {"url": change.settings.url, "secretSet": change.settings.secret_set}
        if change.new_secret is not None:
            answer["secret"] = change.new_secret
        return answer

    result = with_runtime(work)
    if isinstance(result, str):
        fail(result, as_json)
    text = f"callback URL {result['url'] or '(none)'}"
    if "secret" in result:
        text += f"\nsigning secret {result['secret']}; it is shown only now"
    elif not result["secretSet"]:
        text += "\nno signing secret yet (one is made with the first URL)"
    show(result, as_json, text)


RateOption = Annotated[
    str | None,
    typer.Option(
        metavar="RATE[/BURST]", help="Requests per second, and optionally the burst (default 2 s worth)."
    ),
]


@company_app.command("limits")
def company_limits(
    company_id: str,
    sends: RateOption = None,
    reads: RateOption = None,
    sends_per_second: Annotated[
        float | None, typer.Option("--sends-per-second", min=0, help="--sends N (SPEC §2's spelling).")
    ] = None,
    reads_per_second: Annotated[
        float | None, typer.Option("--reads-per-second", min=0, help="--reads N (SPEC §2's spelling).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Back to the defaults (before --sends or --reads, if given).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show or set a company's rate limits (SPEC §2): its sends and its reads, each RATE per
    second with bursts of BURST (e.g. --sends 50/100). Running API processes apply a change within
    PARTNER_GATEWAY_RATE_LIMIT_REFRESH_SECONDS (2 s), without a restart. With no option: show them."""
    from partner_gateway.store.repositories import rate_limits

    wanted: dict[LimitedTraffic, Limit] = {}
    for traffic, text, per_second in (
        (LimitedTraffic.SENDS, sends, sends_per_second),
        (LimitedTraffic.READS, reads, reads_per_second),
    ):
        if text is not None and per_second is not None:
            fail(f"give --{traffic} or --{traffic}-per-second, not both", as_json, code=2)
        if per_second is not None:
            text = f"{per_second:g}"
        if text is not None:
            try:
                wanted[traffic] = parse_limit(text)
            except ValueError as error:
                fail(f"--{traffic}: {error}", as_json, code=2)

    async def work(runtime: Runtime) -> tuple[CompanyLimits, bool] | None:
        async with runtime.database.write() as connection:
            if await CompanyRepository(connection).get(company_id) is None:
                return None
            current = await rate_limits.overrides_of(connection, company_id)
            if not wanted and not reset:
                return current, False
            base = CompanyLimits() if reset else current
            changed = CompanyLimits(
                sends=wanted.get(LimitedTraffic.SENDS, base.sends),
                reads=wanted.get(LimitedTraffic.READS, base.reads),
            )
            await rate_limits.set_overrides(connection, company_id, changed, now_ms())
            return changed, True

    settings = settings_or_exit()
    result = with_runtime(work)
    if result is None:
        fail(f"no company {company_id!r}", as_json)
    own, changed = result
    data: dict[str, object] = {"companyId": company_id}
    lines = [f"company {company_id}"]
    for traffic in LimitedTraffic:
        limit = own.of(traffic)
        effective = limit if limit is not None else settings.rate_limit(traffic)
        data[traffic.value] = {
            "perSecond": effective.per_second,
            "burst": effective.burst,
            "default": limit is None,
        }
        where = "the default" if limit is None else "set for this company"
        lines.append(
            f"  {traffic.value:5}  {effective.per_second:g} per second, bursts of {effective.burst} ({where})"
        )
    data["enabled"] = settings.rate_limit_enabled
    data["changed"] = changed
    data["appliesWithinSeconds"] = settings.rate_limit_refresh_seconds
    if changed:
        lines.append(
            f"changed: running API processes apply it within {settings.rate_limit_refresh_seconds:g} s"
        )
    if not settings.rate_limit_enabled:
        lines.append("rate limits are off here (PARTNER_GATEWAY_RATE_LIMIT_ENABLED=false)")
    show(data, as_json, "\n".join(lines))


@apikey_app.command("create")
def apikey_create(
    company: Annotated[str, typer.Option("--company", help="Company id")],
    label: Annotated[str | None, typer.Option(help="A note to tell keys apart")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue another key for a company (shown once)."""

    async def work(runtime: Runtime) -> dict[str, str] | None:
        async with runtime.database.write() as connection:
            repository = CompanyRepository(connection)
            if await repository.get(company) is None:
                return None
            issued = await repository.issue_key(company, now_ms(), label=label)
        return {"companyId": company, "apiKey": issued.plain_key, "apiKeyId": issued.info.id}

    result = with_runtime(work, tell_store=True)
    if result is None:
        fail(f"no company {company!r}", as_json)
        return
    show(result, as_json, f"api key {result['apiKey']} (id {result['apiKeyId']}); it is shown only now")


@apikey_app.command("list")
def apikey_list(
    company: Annotated[str, typer.Option("--company", help="Company id")],
    as_json: JsonFlag = False,
) -> None:
    """List a company's keys (never the keys themselves: only their prefixes)."""

    async def work(runtime: Runtime) -> list[dict[str, str | None]] | None:
        async with runtime.database.read() as connection:
            repository = CompanyRepository(connection)
            if await repository.get(company) is None:
                return None
            keys = await repository.list_keys(company)
        return [
            {
                "apiKeyId": key.id,
                "prefix": key.prefix,
                "label": key.label,
                "createdAt": format_ms(key.created_at),
                "revokedAt": format_ms(key.revoked_at) if key.revoked_at is not None else None,
            }
            for key in keys
        ]

    result = with_runtime(work)
    if result is None:
        fail(f"no company {company!r}", as_json)
        return
    lines = [
        f"{k['apiKeyId']}  {k['prefix']}…  {k['label'] or '-'}  created {k['createdAt']}"
        + (f"  REVOKED {k['revokedAt']}" if k["revokedAt"] else "")
        for k in result
    ]
    show(result, as_json, "\n".join(lines) or "no keys")


@apikey_app.command("revoke")
def apikey_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a key: requests with it are refused from now on."""

    async def work(runtime: Runtime) -> bool:
        async with runtime.database.write() as connection:
            return await CompanyRepository(connection).revoke_key(key_id, now_ms())

    if not with_runtime(work):
        fail(f"no active key {key_id!r}", as_json)
        return
    show({"apiKeyId": key_id, "revoked": True}, as_json, f"revoked {key_id}")
