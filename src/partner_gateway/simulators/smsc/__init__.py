"""SMSC simulator: a real SMPP 3.4 server on loopback that decides each message's fate by destination.

- :mod:`.config`: :class:`SmscConfig` (settings), :class:`SmscScript` (misbehaviour on demand),
  :class:`SmscStats` (counters).
- :mod:`.fates`: the pure rules: SPEC §6 outcome table, message ids, the receipt ``deliver_sm``.
- :mod:`.dispatch`: receipts scheduled, routed to a receiver-capable bind, resent until acknowledged.
- :mod:`.session`: one ESME connection; :mod:`.server`: :class:`SmscSimulator` and :func:`serve_forever`.
"""

from partner_gateway.simulators.smsc.config import SmscConfig, SmscScript, SmscStats
from partner_gateway.simulators.smsc.fates import FATES, Fate, ReceiptSpec, fate_for
from partner_gateway.simulators.smsc.server import SmscSimulator, serve_forever

__all__ = [
    "FATES",
    "Fate",
    "ReceiptSpec",
    "SmscConfig",
    "SmscScript",
    "SmscSimulator",
    "SmscStats",
    "fate_for",
    "serve_forever",
]
