"""Loopback stand-ins for the providers (SMSC over SMPP, WhatsApp Cloud API, RBM) speaking their real protocols."""
