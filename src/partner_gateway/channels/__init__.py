"""Channels: one folder each, with its provider (the contract in base.py) and its entry (entry.py),
listed in registry.py."""
