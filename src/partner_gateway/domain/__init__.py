"""The pure domain: messages, statuses and lifecycle rules, E.164, text encoding.

The lifecycle rules: the precedence of reports and what a change keeps (lifecycle.py), a message
sent in several parts (multipart.py), a fallback SMS's RCS original (sms_fallback.py), the
receipt of an unanswered hand-over (reconciliation.py). Nothing here does I/O or imports from the
other layers.
"""
