"""One ESME connection to the simulated SMSC: bind, enquire_link, unbind, submit_sm, deliver_sm_resp.

Frames are handled as they arrive, several per read, and the answers written without waiting on
anything (``drain`` once per read), so an ESME with a window of outstanding submits gets its answers
as fast as it sends; receipts go through the :class:`ReceiptDispatcher`, never inline.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from partner_gateway.channels.smpp.codec.constants import INTERFACE_VERSION_34, CommandStatus
from partner_gateway.channels.smpp.codec.decoder import decode
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.framing import PduReader
from partner_gateway.channels.smpp.codec.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindRequest,
    BindResponse,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    PduError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from partner_gateway.channels.smpp.codec.smpp_time import parse_smpp_time
from partner_gateway.simulators.smsc.dispatch import PendingReceipt
from partner_gateway.simulators.smsc.fates import (
    DELIVERED,
    EXPIRED,
    ReceiptSpec,
    fate_for,
    receipt_message_id,
    receipt_pdu,
    wanted,
)
from partner_gateway.simulators.smsc.mo import mo_from_submit

if TYPE_CHECKING:
    from partner_gateway.simulators.smsc.server import SmscSimulator

logger = logging.getLogger("partner_gateway.simulators.smsc")

_S = CommandStatus
_BIND_RESP: Final[dict[type[BindRequest], type[BindResponse]]] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}
_BIND_NAMES: Final = {
    BindTransmitter: "transmitter",
    BindReceiver: "receiver",
    BindTransceiver: "transceiver",
}
READ_SIZE: Final = 64 * 1024
CLOSE_TIMEOUT_SECONDS: Final = 2.0


class TokenBucket:
    """``rate`` submits per second with a burst of one second's worth (at least one)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SmscSession:
    def __init__(
        self, simulator: SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._sim = simulator
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._framer = PduReader()
        self.bind: type[BindRequest] | None = None
        self.system_id = ""  # the account bound with; receipts of its submits go to its receivers
        self._sequence = 0
        self._awaiting: dict[int, PendingReceipt] = {}  # deliver_sm sequence_number -> receipt
        self._bucket: TokenBucket | None = None
        self._closing = False
        self._finished = False

    # -- the connection ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self._closing:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                try:
                    frames = self._framer.feed(data)
                except PduError as exc:  # the stream cannot be split any more: say why and hang up
                    self._nack(exc.sequence_number, exc.command_status)
                    break
                for frame in frames:
                    self._handle(frame)
                    if self._closing:
                        break
                if self._framer.error is not None and not self._closing:
                    self._nack(self._framer.error.sequence_number, self._framer.error.command_status)
                    break
                await self._writer.drain()
        except OSError:
            pass  # reset by the peer: nothing to answer
        finally:
            await self._close()

    def close(self) -> None:
        """Hang up (the simulator stops); :meth:`run` finishes."""
        self._finish()

    def can_take_receipt(self) -> bool:
        return (
            not self._closing
            and self.bind in (BindReceiver, BindTransceiver)
            and self._writer.transport.get_write_buffer_size() < self._sim.config.max_write_buffer
        )

    def send_receipt(self, receipt: PendingReceipt) -> None:
        seq = self._next_sequence()
        self._write(replace(receipt.pdu, sequence_number=seq))
        self._awaiting[seq] = receipt
        timeout = self._sim.config.deliver_sm_resp_timeout_seconds
        receipt.timer = self._loop.call_later(timeout, self._receipt_timeout, seq)

    async def _close(self) -> None:
        self._finish()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT_SECONDS)
        except (OSError, TimeoutError):
            self._writer.transport.abort()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = self._closing = True
        self._sim.forget(self)
        awaiting, self._awaiting = list(self._awaiting.values()), {}
        for receipt in awaiting:
            if receipt.timer is not None:
                receipt.timer.cancel()
                receipt.timer = None
            self._sim.dispatcher.failed(receipt)
        self._writer.close()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def _write(self, pdu: Pdu) -> None:
        if not self._writer.transport.is_closing():
            self._writer.write(encode(pdu))

    def _nack(self, sequence_number: int, status: int) -> None:
        self._sim.stats.generic_nacks += 1
        self._write(GenericNack(sequence_number=sequence_number, command_status=status))

    # -- requests and responses --------------------------------------------------------------------

    def _handle(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except PduError as exc:
            self._nack(exc.sequence_number, exc.command_status)
            return
        seq = pdu.sequence_number
        if isinstance(pdu, SubmitSm):
            self._on_submit(pdu)
        elif isinstance(pdu, DeliverSmResp | GenericNack):
            self._on_receipt_answer(seq, pdu.command_status)
        elif isinstance(pdu, EnquireLink):
            self._write(EnquireLinkResp(sequence_number=seq))
        elif isinstance(pdu, BindRequest):
            self._on_bind(pdu)
        elif isinstance(pdu, Unbind):
            self._sim.stats.unbinds += 1
            self._write(UnbindResp(sequence_number=seq))
            self._closing = True
        elif isinstance(pdu, DeliverSm):  # only the SMSC sends deliver_sm
            self._nack(seq, _S.ESME_RINVCMDID)
        # Other responses (enquire_link_resp, unbind_resp, ...) answer nothing we asked: ignored.

    def _on_bind(self, pdu: BindRequest) -> None:
        sim, kind = self._sim, type(pdu)
        resp = _BIND_RESP[kind]
        name = _BIND_NAMES[kind]
        if self.bind is not None:
            self._write(resp(sequence_number=pdu.sequence_number, command_status=_S.ESME_RALYBND))
            return
        status: int = _S.ESME_ROK
        if sim.script.reject_binds > 0:
            sim.script.reject_binds -= 1
            status = _S.ESME_RBINDFAIL
        elif self._is_handset(pdu):
            pass
        elif not secrets.compare_digest(pdu.system_id.encode(), sim.config.system_id.encode()):
            status = _S.ESME_RINVSYSID
        elif not secrets.compare_digest(pdu.password.encode(), sim.config.password.encode()):
            status = _S.ESME_RINVPASWD
        if status != _S.ESME_ROK:
            sim.stats.bind_rejections += 1
            logger.warning(
                "SMSC bind_%s from %s as %r refused: %s", name, self.peer, pdu.system_id, _S(status).name
            )
            self._write(resp(sequence_number=pdu.sequence_number, command_status=status))
            self._closing = True
            return
        self.bind, self.system_id = kind, pdu.system_id
        sim.stats.binds += 1
        if sim.config.max_throughput is not None:
            self._bucket = TokenBucket(sim.config.max_throughput, self._loop.time())
        if kind is not BindTransmitter and pdu.system_id != sim.config.handset_system_id:
            sim.dispatcher.add_receiver(pdu.system_id, self)
        logger.info("SMSC bind_%s from %s as %r", name, self.peer, pdu.system_id)
        self._write(
            resp(
                sequence_number=pdu.sequence_number,
                system_id=sim.config.smsc_system_id,
                sc_interface_version=INTERFACE_VERSION_34,
            )
        )

    def _is_handset(self, pdu: BindRequest) -> bool:
        handset = self._sim.config.handset_system_id
        return (
            handset is not None
            and secrets.compare_digest(pdu.system_id.encode(), handset.encode())
            and secrets.compare_digest(pdu.password.encode(), self._sim.config.handset_password.encode())
        )

    def _on_mobile_originated(self, pdu: SubmitSm) -> None:
        """A handset's message: delivered to the gateway's receivers as a deliver_sm, resent
        until acknowledged like a receipt."""
        sim = self._sim
        if sim.dispatcher.room() < 1:
            self._reject(pdu, _S.ESME_RMSGQFUL)
            return
        sim.stats.mobile_originated += 1
        sim.dispatcher.add(mo_from_submit(pdu), sim.config.system_id, 0.0)
        message_id = sim.ids.next(sim.config.message_id_format)
        self._write(SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id))

    def _on_receipt_answer(self, seq: int, status: int) -> None:
        receipt = self._awaiting.pop(seq, None)
        if receipt is None:
            return  # late (already timed out) or not ours
        if receipt.timer is not None:
            receipt.timer.cancel()
            receipt.timer = None
        if status == _S.ESME_ROK:
            self._sim.dispatcher.acknowledged(receipt)
        else:
            self._sim.dispatcher.failed(receipt)

    def _receipt_timeout(self, seq: int) -> None:
        receipt = self._awaiting.pop(seq, None)
        if receipt is not None:
            receipt.timer = None
            self._sim.dispatcher.failed(receipt)

    # -- submit_sm ---------------------------------------------------------------------------------

    def _on_submit(self, pdu: SubmitSm) -> None:
        sim, script = self._sim, self._sim.script
        sim.stats.submits += 1
        drop = False
        if script.drop_at_submit > 0:
            script.drop_at_submit -= 1
            drop = script.drop_at_submit == 0
        if drop and script.drop_before_answer:
            self._closing = True
            return
        if script.ignore_submits > 0:
            script.ignore_submits -= 1
        elif script.nack_submits > 0:
            script.nack_submits -= 1
            self._nack(pdu.sequence_number, _S.ESME_RSYSERR)
        elif self.bind not in (BindTransmitter, BindTransceiver):
            self._reject(pdu, _S.ESME_RINVBNDSTS)
        elif self.system_id == sim.config.handset_system_id:
            self._on_mobile_originated(pdu)
        elif self._bucket is not None and not self._bucket.take(self._loop.time()):
            sim.stats.throttled += 1
            self._reject(pdu, _S.ESME_RTHROTTLED)
        else:
            self._accept(pdu)
        self._closing = self._closing or drop

    def _reject(self, pdu: SubmitSm, status: int) -> None:
        self._sim.stats.submits_rejected += 1
        self._write(SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status))

    def _accept(self, pdu: SubmitSm) -> None:
        sim, config, script = self._sim, self._sim.config, self._sim.script
        fate = fate_for(pdu.destination_addr)
        if fate.submit_status != _S.ESME_ROK:
            self._reject(pdu, fate.submit_status)
            return
        try:
            validity = parse_smpp_time(pdu.validity_period)
        except ValueError:
            self._reject(pdu, _S.ESME_RINVEXPIRY)
            return
        now = datetime.now(UTC)
        left = None if validity is None else (validity if isinstance(validity, timedelta) else validity - now)
        planned: list[tuple[ReceiptSpec, float]] = []
        for spec in fate.receipts:
            delay = sim.rng.uniform(config.receipt_delay_min_seconds, config.receipt_delay_max_seconds)
            if left is not None and spec == DELIVERED and left.total_seconds() < delay:
                spec, delay = EXPIRED, max(left.total_seconds(), 0.0)  # validity ends first
            if wanted(spec, pdu.registered_delivery):
                planned.append((spec, delay))
        if len(planned) > sim.dispatcher.room():
            self._reject(pdu, _S.ESME_RMSGQFUL)
            return
        vonage = script.hex_ids_decimal_receipts
        message_id = sim.ids.next("hex" if vonage else config.message_id_format)
        receipt_id = receipt_message_id(
            message_id, hex_to_decimal=vonage, strip_zeros=script.strip_receipt_id_zeros
        )
        sim.stats.submits_accepted += 1
        sim.record_content(pdu.destination_addr, pdu.short_message or pdu.message_payload or b"")
        early = bool(planned) and script.receipt_before_response > 0
        if early:
            script.receipt_before_response -= 1
        digits = 12 if script.twelve_digit_dates else config.date_digits
        for i, (spec, delay) in enumerate(planned):
            if early and i == 0:
                delay = 0.0
            receipt = receipt_pdu(
                pdu,
                spec,
                receipt_id=receipt_id,
                submitted_at=now,
                done_at=now + timedelta(seconds=delay),
                date_digits=digits,
                tlvs=config.receipt_tlvs,
            )
            sim.dispatcher.add(receipt, self.system_id, delay, prefer=self if early and i == 0 else None)
        self._write(SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id))
