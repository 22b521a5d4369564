"""The SMPP 3.4 wire format, pure (no I/O, no clock), shared by the ESME and the SMSC simulator.

- :mod:`.constants`: command ids, command_status codes, TLV tags, esm_class and delivery flags.
- :mod:`.pdu`: the typed PDUs and the field tables that describe their bodies.
- :mod:`.encoder`: PDU to frame (``encode``); :mod:`.decoder`: frame to PDU (``decode``).
- :mod:`.framing`: a TCP byte stream split into whole frames.
- :mod:`.udh`: the concatenation User Data Header; :mod:`.smpp_time`: the SMPP time format.
"""
