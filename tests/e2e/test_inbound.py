"""Inbound messages end to end: `partner-gateway serve` with its built-in simulators on known
ports, users writing in through them (`partner-gateway simulate mo`, the SMSC simulator's
handset account, the WhatsApp and RBM simulators' /simulator/inbound), a signed callback
receiver in this process, and the inbound list.

- every channel: a mobile-originated SMS (single GSM 03.38, concatenated UCS-2 by UDH,
  concatenated GSM by sar_* TLVs), a WhatsApp message and an RBM user message arrive at the
  company's receiver as signed `inbound` events and in `GET /messages/inbound`, with its
  filters and keyset pages; another company's inbound is not visible, and one to a number
  nobody owns is counted and not stored;
- opt-out: STOP on a channel refuses later sends to that user on that channel (ERROR
  gw:opted-out, no provider in the timeline), START lets them through again, and the API's
  PUT/DELETE do the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from test_callbacks import Gateway, receiving, send, wait_for

from partner_gateway.callbacks.listener import CallbackReceiver
from partner_gateway.cli.simulate_mo import _submit_sms
from support import BASE, cli, free_port

USER = "+4915112345600"
WHATSAPP_NUMBER = "15550001234"  # the WhatsApp simulator's display_phone_number
RBM_AGENT = "sim-agent"  # the RBM simulator's agent id
UCS2_TEXT = "Grüße aus Köln ☃ " * 12  # UCS-2, 204 characters: four parts of at most 67
GSM_TEXT = "The quick brown fox jumps over the lazy dog. " * 5  # 225 GSM characters: two parts


class InboundGateway(Gateway):
    def __init__(self, tmp_path: Path, postgres_url: str | None) -> None:
        super().__init__(tmp_path, postgres_url)
        self.smsc_port, self.whatsapp_port, self.rbm_port = free_port(), free_port(), free_port()
        self.env |= {
            "PARTNER_GATEWAY_SIMULATOR_SMSC_PORT": str(self.smsc_port),
            "PARTNER_GATEWAY_SIMULATOR_WHATSAPP_PORT": str(self.whatsapp_port),
            "PARTNER_GATEWAY_SIMULATOR_RBM_PORT": str(self.rbm_port),
            "PARTNER_GATEWAY_LOG_LEVEL": "INFO",
        }

    def assign(self, company_id: str, number: str, channel: str) -> None:
        """Assign with the operator's command. On PostgreSQL this module's tests share one
        database, so a number an earlier test assigned is first taken from its company."""
        added = cli(
            self.env, "company", "numbers", "add", company_id, number, "--channel", channel, check=False
        )
        if added.returncode != 0:
            owner = (added.stderr + added.stdout).split("assigned to company")[-1].split()[0]
            cli(self.env, "company", "numbers", "remove", owner, number, "--channel", channel)
            cli(self.env, "company", "numbers", "add", company_id, number, "--channel", channel)

    def mo_cli(self, *args: str) -> dict[str, object]:
        return json.loads(cli(self.env, "simulate", "mo", *args, "--json").stdout)  # type: ignore[no-any-return]

    async def mo_sms(self, sender: str, to: str, text: str, concat: str = "udh") -> None:
        parts: list[int] = []
        await _submit_sms("127.0.0.1", self.smsc_port, "handset", "handset", sender, to, text, concat, parts)  # type: ignore[arg-type]

    async def mo_http(self, port: int, sender: str, text: str) -> str:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/simulator/inbound", json={"from": sender, "to": "-", "text": text}
            )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])


async def inbound_list(client: httpx.AsyncClient, **params: str) -> list[dict]:  # type: ignore[type-arg]
    response = await client.get(f"{BASE}/messages/inbound", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_inbound_on_every_channel_reaches_the_receiver_and_the_list(
    tmp_path: Path, postgres_url: str | None
) -> None:
    gateway = InboundGateway(tmp_path, postgres_url)
    other = json.loads(cli(gateway.env, "company", "create", "Other Ltd", "--json").stdout)
    gateway.assign(gateway.company_id, "12345", "SMS")
    gateway.assign(gateway.company_id, "+" + WHATSAPP_NUMBER, "WHATSAPP")
    gateway.assign(gateway.company_id, RBM_AGENT, "RCS")
    gateway.assign(other["companyId"], "67890", "SMS")
    taken = cli(gateway.env, "company", "numbers", "add", other["companyId"], "12345", check=False)
    assert taken.returncode != 0
    assert "assigned to company" in taken.stderr + taken.stdout
    receiver = CallbackReceiver()
    server, url = await receiving(receiver)
    receiver.secrets = [gateway.point_callbacks_at(url)]
    await gateway.start()
    try:
        assert gateway.mo_cli("--port", str(gateway.smsc_port), "--from", USER, "--to", "12345",
                              "--text", "Hello from a handset")["parts"] == 1  # fmt: skip
        assert gateway.mo_cli("--port", str(gateway.smsc_port), "--from", USER, "--to", "12345",
                              "--text", UCS2_TEXT)["parts"] == 4  # fmt: skip
        await gateway.mo_sms("+4915112345601", "12345", GSM_TEXT, concat="sar")
        await gateway.mo_sms(USER, "67890", "for the other company")
        await gateway.mo_sms(USER, "99999", "to nobody's number")
        wamid = gateway.mo_cli("--channel", "WHATSAPP", "--port", str(gateway.whatsapp_port),
                               "--from", USER, "--to", WHATSAPP_NUMBER, "--text", "hi on WhatsApp")["id"]  # fmt: skip
        rbm_id = await gateway.mo_http(gateway.rbm_port, USER, "hi on RCS")

        async with gateway.client() as client:

            async def all_five() -> list[dict]:  # type: ignore[type-arg]
                items = await inbound_list(client)
                # At least once: an attempt made while this loop ran a CLI command can time out
                # and be made again, so count distinct events.
                events = {r.event_id for r in receiver.received if r.json().get("event") == "inbound"}
                return items if len(items) == 5 and len(events) == 5 else []

            items = await wait_for(all_five, 60, "five inbound messages listed and pushed")
            by_text = {item["text"]: item for item in items}  # type: ignore[union-attr]
            assert set(by_text) == {
                "Hello from a handset",
                UCS2_TEXT,
                GSM_TEXT,
                "hi on WhatsApp",
                "hi on RCS",
            }
            assert by_text[UCS2_TEXT]["parts"] == 4
            assert by_text[UCS2_TEXT]["channel"] == "SMS"
            assert by_text[GSM_TEXT]["parts"] == 2
            assert by_text[GSM_TEXT]["from"] == "+4915112345601"
            assert by_text["Hello from a handset"] | {"id": "", "receivedAt": ""} == {
                "id": "", "channel": "SMS", "from": USER, "to": "12345", "type": "text",
                "text": "Hello from a handset", "receivedAt": "", "parts": 1, "providerMessageId": None,
            }  # fmt: skip
            assert by_text["hi on WhatsApp"]["providerMessageId"] == wamid
            assert by_text["hi on WhatsApp"]["to"] == "+" + WHATSAPP_NUMBER
            assert by_text["hi on RCS"]["providerMessageId"] == rbm_id
            assert by_text["hi on RCS"]["to"] == RBM_AGENT

            # The callbacks: signed, one `inbound` event per message, the list's fields.
            events = [r for r in receiver.received if r.json().get("event") == "inbound"]
            assert all(r.verified for r in events)
            pushed = {r.json()["id"]: r.json() for r in events}
            assert set(pushed) == {item["id"] for item in items}  # type: ignore[union-attr]
            assert len({r.event_id for r in events}) == 5  # one event per inbound message
            for item in items:  # type: ignore[union-attr]
                event = pushed[item["id"]]
                assert {k: event[k] for k in item} == item
                assert event["sequence"] == 1
                assert event["eventId"].startswith("evt_")

            # Filters and keyset pages.
            assert len(await inbound_list(client, channel="SMS")) == 3
            assert [i["text"] for i in await inbound_list(client, **{"from": "+4915112345601"})] == [GSM_TEXT]
            assert len(await inbound_list(client, to="+" + WHATSAPP_NUMBER)) == 1
            assert await inbound_list(client, startDate="2100-01-01") == []
            seen, cursor = [], None
            while True:
                params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
                page = (await client.get(f"{BASE}/messages/inbound", params=params)).json()
                seen += [item["id"] for item in page["items"]]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
            assert seen == [item["id"] for item in items]  # type: ignore[union-attr]
            bad = await client.get(f"{BASE}/messages/inbound", params={"channel": "FAX", "limit": "0"})
            assert bad.status_code == 400
            assert {e["field"] for e in bad.json()["errors"]} == {"channel", "limit"}

            # Tenancy: the other company sees its own only; nobody's number stored nowhere.
            other_headers = {"Authorization": f"Bearer {other['apiKey']}"}
            theirs = await client.get(f"{BASE}/messages/inbound", headers=other_headers)
            assert [i["text"] for i in theirs.json()["items"]] == ["for the other company"]
            assert "for the other company" not in by_text
            assert "to nobody's number" not in by_text
            metrics = (await client.get("/metrics")).text
            assert 'partner_gateway_inbound_messages_total{channel="SMS",outcome="unassigned"} 1.0' in metrics
            assert 'partner_gateway_inbound_messages_total{channel="SMS",outcome="stored"} 4.0' in metrics
    finally:
        await gateway.stop()
        await server.stop()
    assert "no company owns 99999 on SMS" in gateway.log.read_text()


async def _status(client: httpx.AsyncClient, message_id: str, channel: str, final: set[str]) -> dict:  # type: ignore[type-arg]
    async def settled() -> dict:  # type: ignore[type-arg]
        answer = (
            await client.get(f"{BASE}/messages/status/{message_id}", params={"channel": channel})
        ).json()
        return answer if answer["deliveryStatus"] in final else {}  # type: ignore[no-any-return]

    return await wait_for(settled, 30, f"{message_id} settled")  # type: ignore[return-value]


async def _opt_outs(client: httpx.AsyncClient) -> list[tuple[str, str, str]]:
    items = (await client.get(f"{BASE}/opt-outs")).json()["items"]
    return [(item["channel"], item["number"], item["source"]) for item in items]


async def test_stop_opts_out_and_start_opts_in_per_channel(tmp_path: Path, postgres_url: str | None) -> None:
    gateway = InboundGateway(tmp_path, postgres_url)
    gateway.assign(gateway.company_id, "12345", "SMS")
    gateway.assign(gateway.company_id, WHATSAPP_NUMBER, "WHATSAPP")
    await gateway.start()
    try:
        async with gateway.client() as client:
            await gateway.mo_sms(USER, "12345", " Stop ")
            await gateway.mo_http(gateway.whatsapp_port, USER, "UNSUBSCRIBE")

            async def both() -> list[tuple[str, str, str]]:
                listed = await _opt_outs(client)
                return listed if len(listed) == 2 else []

            assert await wait_for(both, 30, "two opt-outs") == [
                ("SMS", USER, "keyword"),
                ("WHATSAPP", USER, "keyword"),
            ]
            refused = await _status(client, await send(client, "SMS", USER, "an offer"), "SMS", {"ERROR"})
            assert refused["errorCode"] == "gw:opted-out"
            timeline = (await client.get(f"{BASE}/messages/{refused['customerMessageId']}/events",
                                         params={"channel": "SMS"})).json()["events"]  # fmt: skip
            assert {event["source"] for event in timeline} == {"gateway"}  # no carrier ever had it
            wa = await _status(
                client, await send(client, "WHATSAPP", USER, "an offer"), "WHATSAPP", {"ERROR"}
            )
            assert wa["errorCode"] == "gw:opted-out"
            # Per channel: RCS was never opted out.
            rcs = await _status(client, await send(client, "RCS", USER, "an offer"), "RCS", {"DELIVERED"})
            assert rcs["errorCode"] is None

            await gateway.mo_sms(USER, "12345", "START")

            async def sms_gone() -> list[tuple[str, str, str]]:
                listed = await _opt_outs(client)
                return listed if len(listed) == 1 else []

            assert await wait_for(sms_gone, 30, "START taking SMS off") == [("WHATSAPP", USER, "keyword")]
            await _status(client, await send(client, "SMS", USER, "welcome back"), "SMS", {"DELIVERED"})

            # The API edits the list the same way.
            added = await client.put(f"{BASE}/opt-outs/RCS/{USER}")
            assert added.status_code == 201
            assert added.json()["source"] == "api"
            assert (await client.put(f"{BASE}/opt-outs/RCS/{USER}")).status_code == 200
            assert (await client.get(f"{BASE}/opt-outs/RCS/{USER}")).status_code == 200
            refused_rcs = await _status(client, await send(client, "RCS", USER, "x"), "RCS", {"ERROR"})
            assert refused_rcs["errorCode"] == "gw:opted-out"
            assert (await client.delete(f"{BASE}/opt-outs/RCS/{USER}")).status_code == 204
            assert (await client.delete(f"{BASE}/opt-outs/RCS/{USER}")).status_code == 404
            assert (await client.get(f"{BASE}/opt-outs/RCS/{USER}")).status_code == 404
            await _status(client, await send(client, "RCS", USER, "y"), "RCS", {"DELIVERED"})
            wrong = await client.put(f"{BASE}/opt-outs/FAX/12")
            assert wrong.status_code == 400
            assert {e["field"] for e in wrong.json()["errors"]} == {
                "channel",
                "number",
            }
            # The inbound list keeps the keywords as messages too (WhatsApp's time has seconds only).
            texts = [item["text"] for item in await inbound_list(client)]
            assert sorted(texts) == [" Stop ", "START", "UNSUBSCRIBE"]
    finally:
        await gateway.stop()
