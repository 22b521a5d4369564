"""Delivery channels: one package per provider protocol (SMPP, WhatsApp, RCS)."""
