"""The SMPP client side (ESME): one carrier account's session, kept bound, submitting and receiving.

:class:`EsmeSession` (:mod:`.session`) is the entry point; it keeps one :class:`~.link.Link` per
bind (:mod:`.link`: connect, bind, reconnect), each over a :class:`~.connection.Connection` (one
TCP connection: correlation, keep-alive, deliver_sm). :mod:`.config` holds its settings and
counters, :mod:`.flow` its pacing, :mod:`.errors` what a submit can end in. The names a caller
needs are re-exported here.
"""

from partner_gateway.channels.smpp.esme.config import BindMode, EsmeConfig, EsmeCounters
from partner_gateway.channels.smpp.esme.connection import DeliverHandler
from partner_gateway.channels.smpp.esme.errors import (
    ConnectionLostAfterWrite,
    EsmeError,
    InvalidSubmit,
    NotConnected,
    OutcomeUnknown,
    ResponseTimeout,
    SubmitRejected,
)
from partner_gateway.channels.smpp.esme.session import EsmeSession

__all__ = [
    "BindMode",
    "ConnectionLostAfterWrite",
    "DeliverHandler",
    "EsmeConfig",
    "EsmeCounters",
    "EsmeError",
    "EsmeSession",
    "InvalidSubmit",
    "NotConnected",
    "OutcomeUnknown",
    "ResponseTimeout",
    "SubmitRejected",
]
