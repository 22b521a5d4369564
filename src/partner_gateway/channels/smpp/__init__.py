"""SMS over SMPP 3.4: the provider, the ESME client it drives, and the codec both speak.

- :mod:`.codec`: the SMPP 3.4 wire format, no I/O (PDUs, ``encode``/``decode``, framing, UDH,
  the SMPP time format); the SMSC simulator speaks it too.
- :mod:`.esme`: the client side (ESME): one carrier account's session, its binds and their
  connections, pacing, and the error tree of a submit.
- :mod:`.receipts`: delivery receipts read from a ``deliver_sm``, their states mapped to the
  gateway's statuses, and the rules that match a receipt's id to its submission.
- :mod:`.bind_slots`: a carrier's binds shared across the cluster's workers through leases.
- :mod:`.provider`: :class:`SmppProvider`, the channel's implementation of the provider contract.
"""
