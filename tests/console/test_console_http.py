"""The partner console over HTTP, with the real app and store: sign-in and its session, CSRF,
expiry, revocation, tenancy, every page, the log's filters and paging, sending, settings, keys."""

from __future__ import annotations

import hashlib
import html
import re

import httpx
import pytest
from sqlalchemy import func, select, update

from partner_gateway.api.app import create_app
from partner_gateway.config import Settings
from partner_gateway.console import stats_page
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository
from partner_gateway.store.tables import callback_attempts, callback_events, console_sessions
from support import BASE, Partner, seed

ORIGIN = "http://gateway.test"
SAME_ORIGIN = {"Origin": ORIGIN}
DAY = 86_400_000
T0 = 1_795_000_000_000  # 2026-11-18


async def sign_in(client: httpx.AsyncClient, partner: Partner) -> str:
    """Sign the client in with the partner's key; the page's CSRF token."""
    answer = await client.post("/console/sign-in", data={"api_key": partner.api_key}, headers=SAME_ORIGIN)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/messages"
    return csrf_of((await client.get("/console/messages")).text)


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, page[:500]
    return found.group(1)


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


def message_ids(page: str) -> list[str]:
    return re.findall(r'<a href="/console/messages/[A-Z]+/(msg_[0-9A-Z]+)">', page)


async def session_rows(runtime: Runtime) -> int:
    async with runtime.database.read() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(console_sessions))).scalar_one()
        )


async def test_sign_in_exchanges_the_key_for_a_hashed_session_in_a_strict_cookie(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    answer = await client.post("/console/sign-in", data={"api_key": partner.api_key}, headers=SAME_ORIGIN)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("pgw_console=")
    for flag in ("HttpOnly", "Path=/console", "SameSite=Strict"):
        assert flag.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain HTTP, no setting
    token = client.cookies["pgw_console"]
    assert partner.api_key not in cookie
    assert token != partner.api_key
    async with runtime.database.read() as connection:
        rows = (await connection.execute(select(console_sessions))).all()
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0].company_id == partner.company_id
    assert rows[0].api_key_id == partner.api_key_id
    assert token not in {str(value) for value in rows[0]}
    page = await client.get("/console/messages")
    assert page.status_code == 200
    assert partner.api_key not in page.text


async def test_the_cookie_is_secure_over_tls_or_when_the_setting_says_so(
    settings: Settings, runtime: Runtime, partner: Partner
) -> None:
    for base, app_settings in (
        ("https://gateway.test", settings),
        ("http://gateway.test", settings.model_copy(update={"console_cookie_secure": True})),
    ):
        runtime.settings = app_settings  # the process's settings: the app's and its runtime's
        transport = httpx.ASGITransport(app=create_app(app_settings, runtime))
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            answer = await http.post(
                "/console/sign-in", data={"api_key": partner.api_key}, headers={"Origin": base}
            )
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()
    runtime.settings = settings.model_copy(update={"console_cookie_secure": False})
    transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway.test") as http:
        answer = await http.post(
            "/console/sign-in", data={"api_key": partner.api_key}, headers={"Origin": "https://gateway.test"}
        )
    assert "secure" not in answer.headers["set-cookie"].lower()  # false: never, even over TLS


async def test_a_wrong_key_is_refused_slowly_and_then_throttled(
    settings: Settings, runtime: Runtime, partner: Partner
) -> None:
    app = create_app(settings.model_copy(update={"console_signin_failures": 2}), runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        for _ in range(2):
            refused = await http.post("/console/sign-in", data={"api_key": "pgw_wrong"}, headers=SAME_ORIGIN)
            assert refused.status_code == 401
            assert "unknown or revoked" in refused.text
            assert "set-cookie" not in refused.headers
        throttled = await http.post(
            "/console/sign-in", data={"api_key": partner.api_key}, headers=SAME_ORIGIN
        )
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
    assert await session_rows(runtime) == 0


async def test_without_a_session_pages_redirect_and_json_answers_401(client: httpx.AsyncClient) -> None:
    for path in (
        "/console/messages",
        "/console/send",
        "/console/stats",
        "/console/callbacks",
        "/console/keys",
    ):
        answer = await client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/console/sign-in"
    json_answer = await client.get("/console/api/messages/SMS/msg_01KB0000000000000000000000")
    assert json_answer.status_code == 401
    assert json_answer.headers["content-type"] == "application/problem+json"
    client.cookies.set("pgw_console", "not-a-session", domain="gateway.test", path="/console")
    assert (await client.get("/console/messages")).status_code == 303
    sign_in_page = await client.get("/console/sign-in")
    assert sign_in_page.status_code == 200
    assert '<label for="api_key">' in sign_in_page.text


async def test_sign_out_deletes_the_session(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    csrf = await sign_in(client, partner)
    token = client.cookies["pgw_console"]
    answer = await client.post("/console/sign-out", data={"csrf_token": csrf}, headers=SAME_ORIGIN)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    assert "max-age=0" in answer.headers["set-cookie"].lower()
    assert await session_rows(runtime) == 0
    client.cookies.set("pgw_console", token, domain="gateway.test", path="/console")
    assert (await client.get("/console/messages")).status_code == 303


async def test_changes_without_the_form_token_or_from_another_origin_are_403(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    csrf = await sign_in(client, partner)
    forged = [
        ({}, SAME_ORIGIN),  # no token
        ({"csrf_token": csrf[:-2] + "xx"}, SAME_ORIGIN),  # a wrong one
        ({"csrf_token": csrf}, {"Origin": "https://evil.example"}),  # another site's page
        ({"csrf_token": csrf}, {"Referer": "https://evil.example/page"}),
        ({"csrf_token": csrf}, {}),  # neither Origin nor Referer
    ]
    for data, headers in forged:
        for path in ("/console/keys", "/console/callbacks", "/console/sign-out", "/console/send"):
            answer = await client.post(path, data={**data, "label": "forged"}, headers=headers)
            assert answer.status_code == 403, (path, data, headers)
            assert answer.headers["content-type"] == "application/problem+json"
    sign_in_forged = await client.post(
        "/console/sign-in", data={"api_key": partner.api_key}, headers={"Origin": "https://evil.example"}
    )
    assert sign_in_forged.status_code == 403
    async with runtime.database.read() as connection:
        assert len(await CompanyRepository(connection).list_keys(partner.company_id)) == 1
    assert await session_rows(runtime) == 1  # the forged sign-out ended nothing
    # The real form, by Referer, or with the token in the header as a script sends it
    assert (
        await client.post("/console/keys", data={"csrf_token": csrf}, headers=SAME_ORIGIN)
    ).status_code == 200
    by_referer = await client.post(
        "/console/keys", data={"csrf_token": csrf}, headers={"Referer": f"{ORIGIN}/console/keys"}
    )
    assert by_referer.status_code == 200
    by_header = await client.post("/console/keys", headers={**SAME_ORIGIN, "X-CSRF-Token": csrf})
    assert by_header.status_code == 200


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
async def test_idle_and_absolute_expiry_end_the_session(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, settings: Settings, column: str
) -> None:
    await sign_in(client, partner)
    assert (await client.get("/console/keys")).status_code == 200
    past = (
        now_ms() - int(settings.console_session_idle_seconds * 1000) - 1
        if column == "last_seen_at"
        else now_ms() - 1
    )
    async with runtime.database.write() as connection:
        await connection.execute(update(console_sessions).values({column: past}))
    assert (await client.get("/console/keys")).status_code == 303
    assert await session_rows(runtime) == 0  # an ended session is deleted when seen


async def test_a_used_session_stays_alive_past_the_idle_time_of_its_sign_in(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, settings: Settings
) -> None:
    await sign_in(client, partner)
    idle_ms = int(settings.console_session_idle_seconds * 1000)
    async with runtime.database.write() as connection:
        await connection.execute(update(console_sessions).values(last_seen_at=now_ms() - idle_ms + 60_000))
    assert (await client.get("/console/keys")).status_code == 200  # touched: last seen now
    async with runtime.database.read() as connection:
        seen = (await connection.execute(select(console_sessions.c.last_seen_at))).scalar_one()
    assert seen > now_ms() - 10_000


async def test_revoking_the_key_ends_its_sessions(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    await sign_in(client, partner)
    async with runtime.database.write() as connection:
        assert await CompanyRepository(connection).revoke_key(partner.api_key_id, now_ms())  # the CLI's way
    assert (await client.get("/console/messages")).status_code == 303
    refused = await client.post("/console/sign-in", data={"api_key": partner.api_key}, headers=SAME_ORIGIN)
    assert refused.status_code == 401


async def test_every_page_renders_with_its_headers(client: httpx.AsyncClient, partner: Partner) -> None:
    await sign_in(client, partner)
    for path, heading in (
        ("/console/messages", "Messages"),
        ("/console/send", "Send a test message"),
        ("/console/stats", "Statistics"),
        ("/console/callbacks", "Status callbacks"),
        ("/console/keys", "API keys"),
    ):
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert f"<h1>{heading}</h1>" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
        assert '<meta name="viewport"' in answer.text
    assert (await client.get("/console/")).headers["location"] == "/console/messages"
    css = await client.get("/console/static/console.css")
    assert css.status_code == 200
    assert ":focus-visible" in css.text


async def test_the_console_is_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{BASE}/openapi.json")).json()
    assert not [path for path in document["paths"] if "console" in path]


async def test_the_log_applies_every_filter(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    sms = await seed(runtime, partner.company_id, [T0 + DAY, T0 + 2 * DAY], status="DELIVERED")
    failed = await seed(runtime, partner.company_id, [T0 + 3 * DAY], status="ERROR")
    other_number = await seed(runtime, partner.company_id, [T0 + 4 * DAY], to="+4915199999999")
    whatsapp = await seed(runtime, partner.company_id, [T0 + 5 * DAY], channel="WHATSAPP")
    await sign_in(client, partner)

    async def shown(query: str) -> list[str]:
        answer = await client.get(f"/console/messages?{query}")
        assert answer.status_code == 200, answer.text
        return message_ids(answer.text)

    assert await shown("") == [*whatsapp, *other_number, *failed, *sms[::-1]]
    assert await shown("channel=WHATSAPP") == whatsapp
    assert await shown("channel=SMS&deliveryStatus=DELIVERED&deliveryStatus=ERROR") == [*failed, *sms[::-1]]
    assert await shown("to=%2B4915199999999") == other_number
    assert await shown("startDate=2026-11-20&endDate=2026-11-22") == [*failed, sms[1]]
    empty = "startDate=&endDate=&channel=&to=&limit="  # the form's empty fields: no filter
    assert len(await shown(empty)) == 5
    bad = await client.get("/console/messages?startDate=yesterday&channel=FAX")
    assert bad.status_code == 400
    assert "startDate" in bad.text
    assert "must be one of" in bad.text


async def test_the_log_pages_forward_and_back_with_the_cursor(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    ids = (await seed(runtime, partner.company_id, [T0 + n * 1000 for n in range(5)]))[::-1]  # newest first
    await sign_in(client, partner)
    first = (await client.get("/console/messages?limit=2")).text
    assert message_ids(first) == ids[:2]
    assert link(first, "prev") is None
    assert link(first, "first") is None
    second_url = link(first, "next")
    assert second_url is not None
    assert "cursor=" in second_url
    second = (await client.get(second_url)).text
    assert message_ids(second) == ids[2:4]
    third_url = link(second, "next")
    assert third_url is not None
    third = (await client.get(third_url)).text
    assert message_ids(third) == ids[4:]
    assert link(third, "next") is None
    back_url = link(third, "prev")
    assert back_url is not None
    back = (await client.get(back_url)).text
    assert message_ids(back) == ids[2:4]
    first_again_url = link(back, "prev")
    assert first_again_url is not None
    assert message_ids((await client.get(first_again_url)).text) == ids[:2]
    assert message_ids((await client.get(link(third, "first") or "")).text) == ids[:2]


async def test_a_message_sent_from_the_console_has_its_page(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    csrf = await sign_in(client, partner)
    for channel in runtime.channels.names:
        sent = await client.post(
            "/console/send",
            data={
                "csrf_token": csrf,
                "channel": channel,
                "to": "+4915112345678",
                "text": "Console test",
                "reference": "c-1",
            },
            headers=SAME_ORIGIN,
        )
        assert sent.status_code == 303, sent.text
        location = sent.headers["location"]
        assert re.fullmatch(rf"/console/messages/{channel}/msg_[0-9A-Z]+", location)
        message_id = location.rsplit("/", 1)[1]
        page = await client.get(location)
        assert page.status_code == 200
        assert message_id in page.text
        assert "Timeline" in page.text
        view = (await client.get(f"/console/api/messages/{channel}/{message_id}")).json()
        assert view["status"]["customerMessageId"] == message_id
        assert view["status"]["reference"] == "c-1"
        assert view["final"] is False
        assert view["events"]["customerMessageId"] == message_id
        assert view["callbacks"]["events"] == []  # no callback URL anywhere
        # the API sees the same message
        api = await client.get(
            f"{BASE}/messages/status/{message_id}?channel={channel}", headers=partner.headers
        )
        assert api.status_code == 200


async def test_a_bad_send_is_shown_on_the_form(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    csrf = await sign_in(client, partner)
    answer = await client.post(
        "/console/send",
        data={"csrf_token": csrf, "channel": "SMS", "to": "0151", "text": "x"},
        headers=SAME_ORIGIN,
    )
    assert answer.status_code == 400
    assert "<strong>to</strong>" in answer.text
    assert 'value="0151"' in answer.text
    unknown = await client.post(
        "/console/send",
        data={"csrf_token": csrf, "channel": "FAX", "to": "+4915112345678", "text": "x"},
        headers=SAME_ORIGIN,
    )
    assert unknown.status_code == 400


async def test_another_companys_message_is_not_found(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, runtime: Runtime
) -> None:
    theirs = (await seed(runtime, other_partner.company_id, [T0]))[0]
    mine = (await seed(runtime, partner.company_id, [T0 + 1]))[0]
    await sign_in(client, partner)
    assert (await client.get(f"/console/messages/SMS/{mine}")).status_code == 200
    page = await client.get(f"/console/messages/SMS/{theirs}")
    assert page.status_code == 404
    assert theirs not in message_ids((await client.get("/console/messages")).text)
    assert (await client.get(f"/console/api/messages/SMS/{theirs}")).status_code == 404
    assert (await client.get(f"/console/messages/WHATSAPP/{mine}")).status_code == 404  # another channel
    assert (await client.get(f"/console/messages/FAX/{mine}")).status_code == 404


@pytest.fixture
def public_urls(runtime: Runtime) -> None:
    """Callback URLs resolve at the process edge: a resolver that knows no names (IPs need none)."""
    from partner_gateway.callbacks.urls import CallbackUrlChecker

    async def resolve(host: str) -> list[str]:
        raise OSError("Name or service not known")

    runtime.callback_urls = CallbackUrlChecker(resolve=resolve)


async def test_callback_settings_set_rotate_and_refuse(
    client: httpx.AsyncClient, partner: Partner, public_urls: None
) -> None:
    csrf = await sign_in(client, partner)
    saved = await client.post(
        "/console/callbacks",
        data={"csrf_token": csrf, "action": "save", "url": "https://93.184.216.34/cb"},
        headers=SAME_ORIGIN,
    )
    assert saved.status_code == 200
    first_secret = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', saved.text)
    assert first_secret
    page = (await client.get("/console/callbacks")).text
    assert 'value="https://93.184.216.34/cb"' in page
    assert first_secret.group(1) not in page
    rotated = await client.post(
        "/console/callbacks", data={"csrf_token": csrf, "action": "rotate"}, headers=SAME_ORIGIN
    )
    second_secret = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', rotated.text)
    assert second_secret
    assert second_secret.group(1) != first_secret.group(1)
    api = (await client.get(f"{BASE}/callbacks/settings", headers=partner.headers)).json()
    assert api == {"url": "https://93.184.216.34/cb", "secretSet": True}
    refused = await client.post(
        "/console/callbacks",
        data={"csrf_token": csrf, "action": "save", "url": "http://10.0.0.5/cb"},
        headers=SAME_ORIGIN,
    )
    assert refused.status_code == 400
    assert "<strong>url</strong>" in refused.text
    cleared = await client.post(
        "/console/callbacks", data={"csrf_token": csrf, "action": "save", "url": ""}, headers=SAME_ORIGIN
    )
    assert cleared.status_code == 200
    assert (await client.get(f"{BASE}/callbacks/settings", headers=partner.headers)).json()["url"] is None


async def test_keys_are_created_once_and_revoked(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, runtime: Runtime, settings: Settings
) -> None:
    csrf = await sign_in(client, partner)
    made = await client.post("/console/keys", data={"csrf_token": csrf, "label": "ci"}, headers=SAME_ORIGIN)
    assert made.status_code == 200
    found = re.search(r'<code id="new-key">(pgw_[^<]+)</code>', made.text)
    assert found
    new_key = found.group(1)
    assert new_key not in (await client.get("/console/keys")).text
    assert (
        await client.get(f"{BASE}/callbacks/settings", headers={"Authorization": f"Bearer {new_key}"})
    ).status_code == 200
    async with runtime.database.read() as connection:
        keys = await CompanyRepository(connection).list_keys(partner.company_id)
    new_id = next(key.id for key in keys if key.label == "ci")

    # A second browser, on another app (process) on the store, signed in with the new key:
    # revoking that key from the first browser ends the second's session.
    second = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, runtime)), base_url=ORIGIN
    )
    async with second:
        assert (
            await second.post("/console/sign-in", data={"api_key": new_key}, headers=SAME_ORIGIN)
        ).status_code == 303
        revoked = await client.post(
            f"/console/keys/{new_id}/revoke", data={"csrf_token": csrf}, headers=SAME_ORIGIN
        )
        assert revoked.status_code == 303
        assert revoked.headers["location"] == "/console/keys"
        assert (await second.get("/console/messages")).status_code == 303
    assert "revoked" in (await client.get("/console/keys")).text
    # Another company's key cannot be revoked from here
    theirs = await client.post(
        f"/console/keys/{other_partner.api_key_id}/revoke", data={"csrf_token": csrf}, headers=SAME_ORIGIN
    )
    assert theirs.status_code == 400
    async with runtime.database.read() as connection:
        assert (
            await CompanyRepository(connection).company_for_key(other_partner.api_key)
            == other_partner.company_id
        )
    # Revoking the session's own key signs this browser out
    own = await client.post(
        f"/console/keys/{partner.api_key_id}/revoke", data={"csrf_token": csrf}, headers=SAME_ORIGIN
    )
    assert own.status_code == 303
    assert own.headers["location"] == "/console/sign-in?ended=1"
    assert (await client.get("/console/messages")).status_code == 303


async def test_stats_page_charts_and_their_library(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(runtime, partner.company_id, [now_ms() - 3_600_000], status="DELIVERED")
    await sign_in(client, partner)
    page = await client.get("/console/stats?bucket=hour")
    assert page.status_code == 200
    assert '<script type="application/json" id="stats-data">' in page.text
    assert "<td>SMS</td><td>1</td>" in page.text
    assert '<script src="/console/vendor/chart.umd.min.js"' in page.text
    library = await client.get("/console/vendor/chart.umd.min.js")
    assert library.status_code == 200, "Chart.js is missing: run scripts/bootstrap (npm ci)"
    assert library.headers["content-type"].startswith("text/javascript")
    monkeypatch.setattr(stats_page, "CHART_JS", stats_page.CHART_JS.with_name("missing.js"))
    assert (await client.get("/console/vendor/chart.umd.min.js")).status_code == 404
    assert (await client.get("/console/stats")).status_code == 200  # the page says so itself (charts.js)
    bad = await client.get("/console/stats?bucket=week&startDate=2026-11-01&endDate=2026-11-02")
    assert bad.status_code == 400
    assert "bucket" in bad.text


async def test_the_callback_page_lists_the_companys_recent_failures(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, runtime: Runtime
) -> None:
    now = now_ms()
    mine = (await seed(runtime, partner.company_id, [now - 60_000]))[0]
    theirs = (await seed(runtime, other_partner.company_id, [now - 60_000]))[0]
    events = [
        ("evt_mine_1", partner.company_id, mine, now - 50_000),
        ("evt_old", partner.company_id, mine, now - 8 * DAY),  # older than the page's 7 days
        ("evt_theirs", other_partner.company_id, theirs, now - 50_000),
    ]
    attempts = [
        ("evt_mine_1", now - 40_000, 500, None),
        ("evt_mine_1", now - 30_000, None, "connection refused"),
        ("evt_mine_1", now - 20_000, 204, None),  # delivered: not a failure
        ("evt_old", now - 8 * DAY, 503, None),
        ("evt_theirs", now - 40_000, 500, None),
    ]
    async with runtime.database.write() as connection:
        for event_id, company_id, message_id, occurred_at in events:
            await connection.execute(
                callback_events.insert().values(
                    id=event_id, company_id=company_id, message_id=message_id, sequence=1,
                    occurred_at=occurred_at, url="https://93.184.216.34/cb", body="{}", state="delivered",
                    attempts=1, pending_since=occurred_at,
                )
            )  # fmt: skip
        for event_id, attempted_at, status, error in attempts:
            await connection.execute(
                callback_attempts.insert().values(
                    event_id=event_id, attempted_at=attempted_at, url="https://93.184.216.34/cb",
                    response_status=status, error=error, duration_ms=12,
                )
            )  # fmt: skip
    await sign_in(client, partner)
    page = (await client.get("/console/callbacks")).text
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td><a href=\"/console/messages/SMS/msg_[0-9A-Z]+\"><code>(msg_[0-9A-Z]+)</code></a></td><td>[^<]+</td><td>([^<]+)</td></tr>",
        page,
    )
    assert [(message, outcome) for _at, message, outcome in rows] == [
        (mine, "connection refused"),
        (mine, "HTTP 500"),
    ]
