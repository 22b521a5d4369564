"""The gateway's own errors, for the layers under the API.

    GatewayError
     ├── InvalidInput        a request the domain rules refuse; carries (field, message) pairs
     ├── IdempotencyConflict  an Idempotency-Key reused with a different request
     └── Unavailable         a dependency (the store, the broker) cannot be reached now

The API turns each into problem details in one place (api/problems.py); nothing else does.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of the gateway's own errors."""


class InvalidInput(GatewayError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors


class IdempotencyConflict(GatewayError):
    """The key was used before for a different request body."""


class Unavailable(GatewayError):
    """A dependency is unavailable; the request may be retried later."""
