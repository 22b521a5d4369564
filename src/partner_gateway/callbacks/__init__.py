"""Callbacks: signed status pushes to partners, with retries (SPEC §5; docs/callbacks.md).

Where a company's callbacks may go and the addresses to connect to (urls.py), the signature
header (signing.py), the signing secrets, generated and kept encrypted (secrets.py), the retry
schedule (schedule.py), one attempt (attempt.py), the sender that claims the events the store
writes with each status change (sender.py), and a receiver that checks signatures (listener.py).
"""
