"""SMPP 3.4: pure PDU codec and delivery-receipt parser shared by the ESME client and the SMSC simulator."""
