"""Receipts on their way: scheduled with ``loop.call_later``, routed to a receiver-capable bind of the
submitter's system_id (any connection, round robin), resent when not acknowledged, bounded in number.

A receipt is acknowledged only by a ``deliver_sm_resp`` with ESME_ROK. An error status, a
``generic_nack``, no answer within ``deliver_sm_resp_timeout_seconds`` or the connection closing
first all count as a failure: the receipt is sent again after ``receipt_retry_seconds`` (counted in
``receipts_resent``), at most ``max_receipt_resends`` times, then abandoned. A receipt due while no
receiver is bound (or every receiver's write buffer is full) waits, re-checking every
``receipt_retry_seconds``, for up to ``receipt_hold_seconds`` (that wait is not a resend).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from partner_gateway.channels.smpp.codec.pdu import DeliverSm
from partner_gateway.simulators.smsc.config import SmscConfig, SmscScript, SmscStats


@dataclass(eq=False, slots=True)
class PendingReceipt:
    """A receipt until it is acknowledged or abandoned; ``timer`` is its one scheduled callback
    (the next delivery attempt, or the deliver_sm_resp timeout of the connection it went out on)."""

    pdu: DeliverSm
    system_id: str
    hold_until: float  # loop time after which a receipt nobody can take is abandoned
    writes: int = 0
    is_copy: bool = False  # the scripted second copy of a receipt (never copied again)
    timer: asyncio.TimerHandle | None = None


class ReceiptSink(Protocol):
    """A bound connection that can take receipts (the simulator's session)."""

    def can_take_receipt(self) -> bool: ...

    def send_receipt(self, receipt: PendingReceipt) -> None:
        """Write the receipt with a fresh sequence_number and await its deliver_sm_resp."""


class ReceiptDispatcher:
    def __init__(
        self,
        config: SmscConfig,
        stats: SmscStats,
        script: Callable[[], SmscScript],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._config = config
        self._stats = stats
        self._script = script
        self._loop = loop
        self._pending: set[PendingReceipt] = set()
        self._receivers: dict[str, list[ReceiptSink]] = {}
        self._turn = 0
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def room(self) -> int:
        """How many more receipts may be queued (``max_pending_receipts`` bounds them all)."""
        return self._config.max_pending_receipts - len(self._pending)

    def add_receiver(self, system_id: str, sink: ReceiptSink) -> None:
        self._receivers.setdefault(system_id, []).append(sink)

    def remove_receiver(self, sink: ReceiptSink) -> None:
        for sinks in self._receivers.values():
            if sink in sinks:
                sinks.remove(sink)

    def add(self, pdu: DeliverSm, system_id: str, delay: float, *, prefer: ReceiptSink | None = None) -> None:
        """Queue a receipt for ``delay`` seconds from now; ``delay == 0`` with ``prefer`` sends it at
        once, on ``prefer`` when it can take it (the receipt-before-response script)."""
        hold = self._loop.time() + delay + self._config.receipt_hold_seconds
        receipt = PendingReceipt(pdu, system_id, hold)
        self._pending.add(receipt)
        if delay <= 0 and prefer is not None:
            self._dispatch(receipt, prefer)
        else:
            self._schedule(receipt, delay)

    def acknowledged(self, receipt: PendingReceipt) -> None:
        self._pending.discard(receipt)
        self._stats.receipts_acknowledged += 1

    def failed(self, receipt: PendingReceipt) -> None:
        """Not acknowledged (error answer, timeout, lost connection): resend later or give up."""
        if self._closed:
            return
        if receipt.writes > self._config.max_receipt_resends:
            self._abandon(receipt)
            return
        retry = self._config.receipt_retry_seconds
        receipt.hold_until = self._loop.time() + retry + self._config.receipt_hold_seconds
        self._schedule(receipt, retry)

    def close(self) -> None:
        """Cancel every scheduled receipt (the simulator stops)."""
        self._closed = True
        for receipt in self._pending:
            if receipt.timer is not None:
                receipt.timer.cancel()
                receipt.timer = None
        self._pending.clear()
        self._receivers.clear()

    def _schedule(self, receipt: PendingReceipt, delay: float) -> None:
        receipt.timer = self._loop.call_later(max(delay, 0.0), self._dispatch, receipt, None)

    def _pick(self, system_id: str) -> ReceiptSink | None:
        sinks = self._receivers.get(system_id, [])
        for i in range(len(sinks)):
            sink = sinks[(self._turn + i) % len(sinks)]
            if sink.can_take_receipt():
                self._turn = (self._turn + i + 1) % len(sinks)
                return sink
        return None

    def _dispatch(self, receipt: PendingReceipt, prefer: ReceiptSink | None) -> None:
        receipt.timer = None
        if self._closed or receipt not in self._pending:
            return
        sink = prefer if prefer is not None and prefer.can_take_receipt() else self._pick(receipt.system_id)
        if sink is None:
            if self._loop.time() >= receipt.hold_until:
                self._abandon(receipt)
            else:
                self._schedule(receipt, self._config.receipt_retry_seconds)
            return
        twin = None
        if receipt.writes:
            self._stats.receipts_resent += 1
        elif self._script().duplicate_receipts and not receipt.is_copy and self.room() > 0:
            twin = PendingReceipt(receipt.pdu, receipt.system_id, receipt.hold_until, is_copy=True)
            self._pending.add(twin)
        receipt.writes += 1
        self._stats.receipts_sent += 1
        sink.send_receipt(receipt)
        if twin is not None:
            self._dispatch(twin, sink)

    def _abandon(self, receipt: PendingReceipt) -> None:
        self._pending.discard(receipt)
        self._stats.receipts_abandoned += 1
