"""The pure domain: messages, statuses and lifecycle rules, E.164, text encoding.

Nothing here does I/O or imports from the other layers.
"""
