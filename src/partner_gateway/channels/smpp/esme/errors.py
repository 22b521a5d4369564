"""What a submit through :class:`~partner_gateway.channels.smpp.esme.EsmeSession` can end in.

The classes say what the dispatcher may do next, not only what went wrong::

    EsmeError
    ├── NotConnected                 never written: nothing reached the SMSC, safe to resend
    ├── SubmitRejected               the SMSC answered with an error (command_status, transient)
    │   └── InvalidSubmit            refused before writing: the codec cannot encode the PDU (permanent)
    └── OutcomeUnknown               written, but no usable answer: the SMSC may have accepted it;
        │                            do not resend blindly (reason: "timeout", "connection_lost",
        │                            "malformed_response")
        ├── ResponseTimeout          no submit_sm_resp within response_timeout
        └── ConnectionLostAfterWrite the connection ended (or the session stopped) before the answer

``SubmitRejected.transient`` is true for ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR, ESME_RX_T_APPN
and for a generic_nack answering the submit: retry later. Any other status is permanent for that
message (ESME_RINVDSTADR, ESME_RINVSRCADR, ...).
"""

from __future__ import annotations

from typing import Final

from partner_gateway.channels.smpp.codec.constants import CommandStatus, status_name

_S = CommandStatus

TRANSIENT_STATUSES: Final = frozenset(
    {_S.ESME_RTHROTTLED, _S.ESME_RMSGQFUL, _S.ESME_RSYSERR, _S.ESME_RX_T_APPN}
)
THROTTLING_STATUSES: Final = frozenset({_S.ESME_RTHROTTLED, _S.ESME_RMSGQFUL})


class EsmeError(Exception):
    """Base of every outcome :meth:`EsmeSession.submit` raises."""


class NotConnected(EsmeError):
    """The PDU was never written (not bound in time, stopping, or the link dropped before writing)."""


class SubmitRejected(EsmeError):
    """The SMSC answered the submit_sm with a non-zero command_status (or a generic_nack)."""

    def __init__(
        self,
        command_status: int,
        *,
        transient: bool,
        generic_nack: bool = False,
        sequence_number: int | None = None,
        detail: str = "",
    ) -> None:
        what = "generic_nack" if generic_nack else "submit_sm_resp"
        kind = "transient" if transient else "permanent"
        text = f"{what} {status_name(command_status)} ({kind})"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.command_status = command_status
        self.transient = transient
        self.generic_nack = generic_nack
        self.sequence_number = sequence_number

    @property
    def throttled(self) -> bool:
        """ESME_RTHROTTLED or ESME_RMSGQFUL: the session has paused new submits for a while."""
        return self.command_status in THROTTLING_STATUSES and not self.generic_nack

    @classmethod
    def from_status(cls, command_status: int, *, sequence_number: int | None = None) -> SubmitRejected:
        return cls(
            command_status,
            transient=command_status in TRANSIENT_STATUSES,
            sequence_number=sequence_number,
        )


class InvalidSubmit(SubmitRejected):
    """The codec refused the PDU (e.g. ESME_RINVDSTADR for a 30-digit number); nothing was written."""

    def __init__(self, command_status: int, detail: str) -> None:
        super().__init__(command_status, transient=False, detail=detail)


class OutcomeUnknown(EsmeError):
    """The submit_sm was written but no usable answer came: the SMSC may or may not have taken it."""

    reason = "unknown"

    def __init__(self, message: str, *, sequence_number: int, reason: str | None = None) -> None:
        super().__init__(message)
        self.sequence_number = sequence_number
        if reason is not None:
            self.reason = reason


class ResponseTimeout(OutcomeUnknown):
    reason = "timeout"


class ConnectionLostAfterWrite(OutcomeUnknown):
    reason = "connection_lost"
