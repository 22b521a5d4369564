"""Repositories: every query the gateway runs lives here."""
