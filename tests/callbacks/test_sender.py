"""The callback sender over real HTTP to a real local receiver, on both stores: signed,
sequenced events; retries after 500s, timeouts and refused connections with the same bytes;
rotation; URL checks at every attempt; isolation between companies; a failing endpoint backed
off as a whole; giving up; the partner's view and replay."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
from callback_support import (
    StartReceiver,
    delivered_in_store,
    message_with_changes,
    secrets_of,
    sender_for,
    until,
)
from sqlalchemy import text

from partner_gateway.callbacks.listener import Received
from partner_gateway.callbacks.sender import UNRECORDED_ROUNDS
from partner_gateway.callbacks.signing import verify
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from support import BASE, Partner, free_port


def answers(*statuses: int):  # type: ignore[no-untyped-def]
    """An answer function giving these statuses in turn, then 204."""
    remaining = list(statuses)

    async def answer(_received: Received) -> int:
        return remaining.pop(0) if remaining else 204

    return answer


async def callbacks_of(client: httpx.AsyncClient, partner: Partner, message_id: str) -> dict[str, object]:
    response = await client.get(
        f"{BASE}/messages/{message_id}/callbacks", params={"channel": "SMS"}, headers=partner.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_signed_sequenced_events_retried_after_500s_with_the_same_bytes(
    runtime: Runtime, partner: Partner, client: httpx.AsyncClient, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver(answers(500, 503))
    message_id = await message_with_changes(runtime, partner.company_id, url)
    sender = sender_for(runtime)
    await sender.start()
    try:
        await until(lambda: sum(1 for r in receiver.received) >= 4)
        await until(lambda: sender.counts["delivered"] == 2)
    finally:
        await sender.stop()
    secrets = await secrets_of(runtime, partner.company_id)  # made on first use
    assert len(secrets) == 1
    by_event: dict[str, set[bytes]] = {}
    for received in receiver.received:
        verify(received.signature, received.body, secrets, now=now_ms() // 1000)
        assert received.headers["content-type"] == "application/json"
        by_event.setdefault(received.event_id, set()).add(received.body)
    assert all(len(bodies) == 1 for bodies in by_event.values())  # the same bytes on every attempt
    events = sorted((json.loads(next(iter(b))) for b in by_event.values()), key=lambda e: e["sequence"])
    assert [(e["sequence"], e["deliveryStatus"]) for e in events] == [(1, "SENT"), (2, "DELIVERED")]
    assert all(e["eventId"] in by_event for e in events)
    view = await callbacks_of(client, partner, message_id)
    statuses = [[a["responseStatus"] for a in e["attempts"]] for e in view["events"]]  # type: ignore[index, union-attr]
    assert sorted(statuses, key=len)[-1][-1] == 204
    assert sum(len(s) for s in statuses) == len(receiver.received)
    assert all(e["state"] == "DELIVERED" and e["nextAttemptAt"] is None for e in view["events"])  # type: ignore[index, union-attr]
    assert {500, 503} <= {s for attempts in statuses for s in attempts}


async def test_timeouts_and_refused_connections_are_retried(
    runtime: Runtime, partner: Partner, client: httpx.AsyncClient, start_receiver: StartReceiver
) -> None:
    hang = asyncio.Event()

    async def slow_first(received: Received) -> int:
        if not hang.is_set():
            hang.set()
            await asyncio.sleep(5)  # past the sender's timeout (0.3 s)
        return 204

    _slow, slow_url = await start_receiver(slow_first)
    port = free_port()  # nothing listens here yet: the connection is refused
    refused_url = f"http://127.0.0.1:{port}/cb"
    slow_message = await message_with_changes(runtime, partner.company_id, slow_url, statuses=[])
    refused_message = await message_with_changes(runtime, partner.company_id, refused_url, statuses=[])

    from partner_gateway.domain.statuses import DeliveryStatus

    for message_id in (slow_message, refused_message):
        await _apply(runtime, message_id, DeliveryStatus.SENT)
    sender = sender_for(runtime, callback_timeout_seconds=0.3)
    await sender.start()
    try:
        await until(lambda: sender.counts["failed"] >= 2)
        late, _late_url = await start_receiver(port=port)
        await until(lambda: sender.counts["delivered"] == 2)
    finally:
        await sender.stop()
    slow_view = await callbacks_of(client, partner, slow_message)
    refused_view = await callbacks_of(client, partner, refused_message)
    slow_attempts = slow_view["events"][0]["attempts"]  # type: ignore[index]
    refused_attempts = refused_view["events"][0]["attempts"]  # type: ignore[index]
    assert slow_attempts[0]["error"] == "no answer within 0.3 s"
    assert slow_attempts[0]["responseStatus"] is None
    assert slow_attempts[-1]["responseStatus"] == 204
    assert refused_attempts[0]["error"].startswith("connection failed (127.0.0.1)")
    assert refused_attempts[-1]["responseStatus"] == 204
    assert len(late.received) == 1


async def _apply(runtime: Runtime, message_id: str, status: object) -> None:
    from partner_gateway.domain.reports import GATEWAY, StatusReport
    from partner_gateway.store.repositories import delivery

    report = StatusReport(
        GATEWAY, status, "x", "x", now_ms(), f"{message_id}:{status}", message_id=message_id
    )  # type: ignore[arg-type]
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(connection, [report], now_ms())


async def test_during_a_rotation_two_signatures_one_per_secret(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    async with runtime.database.write() as connection:
        settings = CallbackSettingsRepository(connection, runtime.callback_secrets)
        old = (await settings.set_url(partner.company_id, url, now_ms())).new_secret
        new = (await settings.set_url(partner.company_id, url, now_ms(), rotate_secret=True)).new_secret
    assert old
    assert new
    await message_with_changes(runtime, partner.company_id, None, statuses=[])  # the default URL
    message_id = await message_with_changes(runtime, partner.company_id, None)
    sender = sender_for(runtime)
    await sender.start()
    try:
        await until(lambda: len(receiver.received) == 2)
    finally:
        await sender.stop()
    for received in receiver.received:
        assert received.json()["customerMessageId"] == message_id
        stamp, first, second = received.signature.split(",")
        assert stamp.startswith("t=")
        assert first.startswith("v1=")
        assert second.startswith("v1=")
        now = now_ms() // 1000
        verify(f"{stamp},{first}", received.body, [new], now=now)  # the new secret's first
        verify(f"{stamp},{second}", received.body, [old], now=now)


async def test_the_first_callback_after_a_rotation_carries_the_new_signature(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    """A running sender has the company's secrets cached; the rotation's claim tells it to read
    them again, so no callback after the rotation is signed with the old secret alone."""
    receiver, url = await start_receiver()
    async with runtime.database.write() as connection:
        old = (
            await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
                partner.company_id, url, now_ms()
            )
        ).new_secret
    sender = sender_for(runtime)
    await sender.start()
    try:
        await message_with_changes(runtime, partner.company_id, None)
        await until(lambda: len(receiver.received) == 2)  # the old secret is cached now
        assert all(received.signature.count("v1=") == 1 for received in receiver.received)
        async with runtime.database.write() as connection:
            new = (
                await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
                    partner.company_id, url, now_ms(), rotate_secret=True
                )
            ).new_secret
        await message_with_changes(runtime, partner.company_id, None)
        await until(lambda: len(receiver.received) == 4)
    finally:
        await sender.stop()
    assert old
    assert new
    for received in receiver.received[2:]:
        stamp, first, second = received.signature.split(",")
        now = now_ms() // 1000
        verify(f"{stamp},{first}", received.body, [new], now=now)
        verify(f"{stamp},{second}", received.body, [old], now=now)


async def test_urls_are_checked_at_every_attempt_and_the_checked_address_is_used(
    runtime: Runtime, partner: Partner, client: httpx.AsyncClient, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    port = url.split(":")[2].split("/")[0]
    literal = await message_with_changes(runtime, partner.company_id, f"http://0x7f.1:{port}/cb", statuses=[])
    resolved = await message_with_changes(
        runtime, partner.company_id, f"http://partner.example:{port}/cb", statuses=[]
    )
    from partner_gateway.domain.statuses import DeliveryStatus

    for message_id in (literal, resolved):
        await _apply(runtime, message_id, DeliveryStatus.SENT)

    async def private(host: str) -> list[str]:
        return ["93.184.215.14", "10.0.0.5"] if host == "partner.example" else []

    refused: list[str] = []  # what /metrics counts
    sender = sender_for(
        runtime, allow_private=False, resolve=private, on_attempt=lambda outcome, _s: refused.append(outcome)
    )
    await sender.start()
    try:
        await until(lambda: sender.counts["failed"] >= 2)
    finally:
        await sender.stop()
    assert receiver.received == []  # nothing reached the loopback receiver
    assert refused[:2] == ["refused_url", "refused_url"]
    errors = {
        message_id: (await callbacks_of(client, partner, message_id))["events"][0]["attempts"][0]["error"]  # type: ignore[index]
        for message_id in (literal, resolved)
    }
    assert errors[literal] == "URL refused: must not point at a loopback address (127.0.0.1)"
    assert (
        errors[resolved]
        == "URL refused: must not point at a private address (partner.example resolves to 10.0.0.5)"
    )

    # Allowed, the name is resolved by the sender's own check, and the request goes to that address
    # with the name in Host (a DNS answer that changed since would not be used).
    async def loopback(host: str) -> list[str]:
        return ["127.0.0.1"] if host == "partner.example" else []

    sender = sender_for(runtime, allow_private=True, resolve=loopback)
    await sender.start()
    try:
        await until(lambda: len(receiver.received) == 2)
    finally:
        await sender.stop()
    hosts = sorted(received.headers["host"] for received in receiver.received)
    assert hosts == [f"0x7f.1:{port}", f"partner.example:{port}"] or hosts == sorted(
        [f"127.0.0.1:{port}", f"partner.example:{port}"]
    )


async def test_a_hanging_endpoint_does_not_delay_another_company(
    runtime: Runtime, partner: Partner, other_partner: Partner, start_receiver: StartReceiver
) -> None:
    release = asyncio.Event()

    async def hang(_received: Received) -> int:
        await release.wait()
        return 204

    hanging, hanging_url = await start_receiver(hang)
    healthy, healthy_url = await start_receiver()
    for _ in range(30):
        await message_with_changes(runtime, partner.company_id, hanging_url)
    for _ in range(10):
        await message_with_changes(runtime, other_partner.company_id, healthy_url)
    sender = sender_for(runtime, callback_timeout_seconds=30.0, callback_concurrency_per_endpoint=4)
    await sender.start()
    try:
        # Every one of the other company's callbacks arrives while the first endpoint holds its
        # attempts (it answers nothing until released): if it held the sender, this would not end.
        await until(lambda: len(healthy.received) == 20)
        assert len(hanging.received) <= 4  # its own concurrency, no more
        release.set()
        await until(lambda: sender.counts["delivered"] == 80, timeout=60)
    finally:
        release.set()
        await sender.stop()


async def test_answers_waiting_for_their_commit_are_bounded(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    """What a crash can send twice is what was answered and not recorded yet: while the store
    holds the sender's commits back (another writer holding its lock), it makes at most
    UNRECORDED_ROUNDS x its concurrency attempts to one endpoint, then waits for the commit."""

    async def answer(received: Received) -> int:
        await asyncio.sleep(0.01)
        return 204

    receiver, url = await start_receiver(answer)
    for _ in range(60):
        await message_with_changes(runtime, partner.company_id, url)
    # A timeout of 0.5 s lets it hold all 120 from the start (what it holds is what its
    # endpoint's latency, half the timeout at first, works off within half the lease).
    sender = sender_for(runtime, callback_concurrency_per_endpoint=2, callback_timeout_seconds=0.5)
    bound = UNRECORDED_ROUNDS * 2
    await sender.start()
    try:
        await until(lambda: len(receiver.received) >= 1)
        async with runtime.database.write() as connection:  # held: the sender's commits wait
            if connection.dialect.name == "postgresql":
                await connection.execute(text("LOCK TABLE callback_events IN SHARE MODE"))
            else:  # one writer connection: holding it holds every write back
                await connection.execute(text("UPDATE callback_events SET attempts = attempts WHERE 0 = 1"))
            # What the store holds (read on the connection that holds the writes back: the
            # sender's waiting commits hold the pool's others), not the sender's count: a commit
            # that ended just before the lock was taken is counted once the sender runs again.
            recorded = await delivered_in_store(connection)
            await until(lambda: len(receiver.received) - recorded >= bound)
            await asyncio.sleep(0.5)  # time for 100 more attempts, were there no bound
            unrecorded = len(receiver.received) - recorded
            assert await delivered_in_store(connection) == recorded  # held indeed
        assert unrecorded == bound, (recorded, len(receiver.received))
        await until(lambda: sender.counts["delivered"] == 120, timeout=30)
    finally:
        await sender.stop()
    assert len(receiver.received) == 120  # no crash, no duplicate


async def test_an_endpoint_that_keeps_failing_is_backed_off_as_a_whole(
    runtime: Runtime, partner: Partner, client: httpx.AsyncClient, start_receiver: StartReceiver
) -> None:
    async def broken(_received: Received) -> int:
        return 500

    receiver, url = await start_receiver(broken)
    for _ in range(20):
        await message_with_changes(runtime, partner.company_id, url)
    # A slow schedule: the endpoint's pause (3 failures in a row, then 5 s) is what limits it.
    sender = sender_for(runtime, callback_retry_first_seconds=5.0, callback_retry_max_delay_seconds=60.0)
    await sender.start()
    try:
        await until(lambda: sender.counts["put_off"] >= 30)
        await asyncio.sleep(0.5)
    finally:
        await sender.stop()
    # 40 events due; once paused, the others are put off without an attempt, not hammered.
    assert len(receiver.received) < 40
    assert len(receiver.received) <= 3 + 8  # the failures that paused it, and those under way then
    assert sender.counts["failed"] == len(receiver.received)


async def test_given_up_after_the_window_and_visible_then_replayed(
    runtime: Runtime, partner: Partner, client: httpx.AsyncClient, start_receiver: StartReceiver
) -> None:
    failing = True

    async def answer(_received: Received) -> int:
        return 500 if failing else 204

    receiver, url = await start_receiver(answer)
    message_id = await message_with_changes(runtime, partner.company_id, url)
    sender = sender_for(runtime, callback_retry_window_seconds=0.5)
    await sender.start()
    try:
        await until(lambda: sender.counts["given_up"] == 2)
    finally:
        await sender.stop()
    view = await callbacks_of(client, partner, message_id)
    events = view["events"]
    assert [e["state"] for e in events] == ["GIVEN_UP", "GIVEN_UP"]  # type: ignore[index, union-attr]
    assert all(e["nextAttemptAt"] is None and len(e["attempts"]) >= 2 for e in events)  # type: ignore[index, union-attr]
    first_bodies = {r.event_id: r.body for r in receiver.received}

    failing = False
    response = await client.post(
        f"{BASE}/callbacks/replay", json={"since": format_ms(now_ms() - 3_600_000)}, headers=partner.headers
    )
    assert response.status_code == 202
    assert response.json() == {"replayed": 2}
    before = len(receiver.received)
    sender = sender_for(runtime)
    await sender.start()
    try:
        await until(lambda: sender.counts["delivered"] == 2)
    finally:
        await sender.stop()
    replayed = receiver.received[before:]
    assert Counter(r.event_id for r in replayed) == Counter(set(first_bodies))  # the same eventIds, once each
    assert all(r.body == first_bodies[r.event_id] for r in replayed)  # and the same bytes
    view = await callbacks_of(client, partner, message_id)
    assert [e["state"] for e in view["events"]] == ["DELIVERED", "DELIVERED"]  # type: ignore[index, union-attr]


async def test_the_callbacks_of_another_companys_message_are_not_found(
    runtime: Runtime, partner: Partner, other_partner: Partner, client: httpx.AsyncClient
) -> None:
    message_id = await message_with_changes(runtime, partner.company_id, "https://partner.example/cb")
    view = await callbacks_of(client, partner, message_id)
    assert [e["sequence"] for e in view["events"]] == [1, 2]  # type: ignore[index, union-attr]
    assert all(e["state"] == "PENDING" and e["nextAttemptAt"] for e in view["events"])  # type: ignore[index, union-attr]
    for who, channel, expected in (
        (other_partner, "SMS", 404),
        (partner, "WHATSAPP", 404),
        (partner, "FAX", 400),
    ):
        response = await client.get(
            f"{BASE}/messages/{message_id}/callbacks", params={"channel": channel}, headers=who.headers
        )
        assert response.status_code == expected, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    response = await client.post(
        f"{BASE}/callbacks/replay", json={"since": "2026-13-01"}, headers=partner.headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "since"
