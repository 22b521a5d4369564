"""Mobile-originated messages the SMSC simulator delivers to the gateway: what a handset sent,
as `deliver_sm` PDUs (esm_class 0, not a receipt), split and encoded as a handset's SMSC does.

A text that fits one SMS is one PDU; a longer one is several, each with a concatenation UDH
(`udh`, esm_class UDHI) or the sar_* TLVs (`sar`). GSM 03.38 when every character has a septet,
else UCS-2 (domain/encoding.py: the same rules the gateway sends by).
"""

from __future__ import annotations

import random
from typing import Literal

from partner_gateway.channels.smpp.codec.constants import EsmClass
from partner_gateway.channels.smpp.codec.pdu import DeliverSm, SubmitSm
from partner_gateway.channels.smpp.codec.udh import udh_concat
from partner_gateway.domain.encoding import encode_parts

Concatenation = Literal["udh", "sar"]


def mo_pdus(
    source: str,
    destination: str,
    text: str,
    *,
    concat: Concatenation = "udh",
    reference: int | None = None,
    rng: random.Random | None = None,
) -> list[DeliverSm]:
    """The deliver_sm PDUs (sequence numbers set when written) that carry `text` from `source`."""
    encoded = encode_parts(text)
    total = len(encoded.parts)
    if reference is None:
        reference = (rng or random.Random()).randrange(1, 256)  # noqa: S311 - a concatenation reference
    pdus = []
    for index, payload in enumerate(encoded.parts, start=1):
        common = {
            "sequence_number": 0,
            "source_addr_ton": 1 if source.lstrip("+").isdigit() else 5,
            "source_addr_npi": 1 if source.lstrip("+").isdigit() else 0,
            "source_addr": source.lstrip("+"),
            "dest_addr_ton": 1 if len(destination.lstrip("+")) > 8 else 3,
            "dest_addr_npi": 1,
            "destination_addr": destination.lstrip("+"),
            "data_coding": encoded.data_coding,
        }
        if total == 1:
            pdus.append(DeliverSm(**common, short_message=payload))  # type: ignore[arg-type]
        elif concat == "udh":
            pdus.append(
                DeliverSm(
                    **common,  # type: ignore[arg-type]
                    esm_class=int(EsmClass.UDHI),
                    short_message=udh_concat(reference, total, index) + payload,
                )
            )
        else:
            pdus.append(
                DeliverSm(
                    **common,  # type: ignore[arg-type]
                    short_message=payload,
                    sar_msg_ref_num=reference,
                    sar_total_segments=total,
                    sar_segment_seqnum=index,
                )
            )
    return pdus


def mo_from_submit(pdu: SubmitSm) -> DeliverSm:
    """A handset account's submit_sm as the deliver_sm the gateway gets: the same addresses,
    coding, UDH and sar_* TLVs (how a real SMSC routes one ESME's message to another's number)."""
    return DeliverSm(
        sequence_number=0,
        source_addr_ton=pdu.source_addr_ton,
        source_addr_npi=pdu.source_addr_npi,
        source_addr=pdu.source_addr,
        dest_addr_ton=pdu.dest_addr_ton,
        dest_addr_npi=pdu.dest_addr_npi,
        destination_addr=pdu.destination_addr,
        esm_class=pdu.esm_class & int(EsmClass.UDHI),
        data_coding=pdu.data_coding,
        short_message=pdu.short_message,
        message_payload=pdu.message_payload,
        sar_msg_ref_num=pdu.sar_msg_ref_num,
        sar_total_segments=pdu.sar_total_segments,
        sar_segment_seqnum=pdu.sar_segment_seqnum,
    )
