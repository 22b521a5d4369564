"""`partner-gateway simulate mo`: a user writes in, through a running simulator.

SMS: binds to the SMSC simulator as a handset (its `handset` account) and submits
the text, split and encoded as a handset does (UDH or sar_* TLVs; GSM 03.38 or UCS-2); the
simulator delivers it to the gateway's receiver binds as mobile-originated deliver_sm.
WHATSAPP, RCS: asks the simulator (POST /simulator/inbound) to post a signed inbound webhook.
Point the embedded gateway's simulators at known ports with PARTNER_GATEWAY_SIMULATOR_SMSC_PORT,
..._WHATSAPP_PORT and ..._RBM_PORT.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import httpx
import typer

from partner_gateway.cli.common import JsonFlag, fail, run_loop, show
from partner_gateway.simulators.smsc.mo import Concatenation, mo_pdus


def simulate_mo(
    sender: Annotated[str, typer.Option("--from", help="The user's number (E.164)")],
    to: Annotated[str, typer.Option("--to", help="Ours: a number, short code, WhatsApp number or RBM agent")],
    text: Annotated[str, typer.Option("--text", help="What the user writes")],
    channel: Annotated[str, typer.Option("--channel", help="SMS, WHATSAPP or RCS")] = "SMS",
    host: Annotated[str, typer.Option(help="The simulator's address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The simulator's port (SMPP for SMS, HTTP otherwise)")] = 2775,
    concat: Annotated[str, typer.Option(help="A long SMS's parts: udh or sar")] = "udh",
    system_id: Annotated[str, typer.Option(help="The SMSC simulator's handset account")] = "handset",
    password: Annotated[str, typer.Option(help="Its password")] = "handset",  # noqa: S107 - loopback
    as_json: JsonFlag = False,
) -> None:
    """Send a mobile-originated message (or a WhatsApp or RBM user message) into a simulator."""
    wanted = channel.strip().upper()
    if wanted == "SMS":
        if concat not in ("udh", "sar"):
            fail("--concat must be udh or sar", as_json, code=2)
        parts: list[int] = []
        split: Concatenation = "sar" if concat == "sar" else "udh"
        run_loop(_submit_sms(host, port, system_id, password, sender, to, text, split, parts))
        show(
            {"channel": "SMS", "parts": parts[0]},
            as_json,
            f"SMS from {sender} to {to} sent in {parts[0]} part(s)",
        )
        return
    if wanted not in ("WHATSAPP", "RCS"):
        fail("--channel must be SMS, WHATSAPP or RCS", as_json, code=2)
    try:
        response = httpx.post(
            f"http://{host}:{port}/simulator/inbound",
            json={"from": sender, "to": to, "text": text},
            timeout=10,
        )
    except httpx.HTTPError as error:
        fail(f"the {wanted} simulator at {host}:{port} did not answer: {error}", as_json)
    if response.status_code != 202:
        fail(f"the {wanted} simulator answered {response.status_code}: {response.text[:200]}", as_json)
    identifier = response.json().get("id")
    show(
        {"channel": wanted, "id": identifier}, as_json, f"{wanted} message {identifier} from {sender} posted"
    )


async def _submit_sms(
    host: str,
    port: int,
    system_id: str,
    password: str,
    sender: str,
    to: str,
    text: str,
    concat: Concatenation,
    parts: list[int],
) -> None:
    from partner_gateway.channels.smpp.codec.constants import CommandStatus
    from partner_gateway.channels.smpp.codec.pdu import DeliverSm, SubmitSm
    from partner_gateway.channels.smpp.esme import EsmeConfig, EsmeSession

    async def refuse(_pdu: DeliverSm) -> int:
        return int(CommandStatus.ESME_ROK)

    session = EsmeSession(
        EsmeConfig(host=host, port=port, system_id=system_id, password=password, bind_mode="transceiver"),
        on_deliver=refuse,
    )
    await session.start()
    try:
        if not await session.wait_bound(10):
            raise typer.BadParameter(
                f"could not bind to the SMSC simulator at {host}:{port} as {system_id!r}"
            )
        pdus = mo_pdus(sender, to, text, concat=concat)
        for pdu in pdus:
            fields = {
                f.name: getattr(pdu, f.name) for f in dataclasses.fields(SubmitSm) if hasattr(pdu, f.name)
            }
            await session.submit(SubmitSm(**fields))
        parts.append(len(pdus))
    finally:
        await session.stop()
