"""Callbacks: signed status pushes to partners, with retries (SPEC §5).

Built so far: where a company's callbacks go and whether the gateway may go there (urls.py), the
signature header (signing.py) and the signing secrets, generated and kept encrypted (secrets.py).
The event outbox and the sender come next; they use `urls.CallbackUrlChecker.check` to connect
to exactly the addresses checked, and the settings repository's `signing_secrets`.
"""
