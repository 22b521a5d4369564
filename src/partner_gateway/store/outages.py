"""Whether an error means the store cannot be reached or written just now, rather than a bug.

Such an error is answered 503 with Retry-After (api/problems.py), and the pipeline waits and tries
again (dispatch/handover.py) instead of giving up on what it was recording. The store is
"unavailable" when its server cannot be reached or drops the connection (PostgreSQL down,
restarted, the network cut), a pool has no connection to give in time, or the disk is full or
failing (SQLite's SQLITE_FULL, SQLITE_IOERR: sqlite3.OperationalError under SQLAlchemy's).
"""

from __future__ import annotations

import logging
import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from partner_gateway.errors import Unavailable

_UNAVAILABLE = (
    Unavailable,
    OperationalError,  # SQLAlchemy's: connection refused or lost, disk full, database locked
    InterfaceError,  # SQLAlchemy's: "connection is closed" when a server went away mid-use
    PoolTimeoutError,
    sqlite3.OperationalError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # the server shutting down, or restarting
    asyncpg.exceptions.InternalClientError,  # the server's goodbye arrived mid-statement
    OSError,
    TimeoutError,
)


def store_unavailable(error: BaseException) -> bool:
    """True when `error` says the store cannot be used now (retrying later may work)."""
    if isinstance(error, _UNAVAILABLE):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def log_failure(logger: logging.Logger, error: Exception, what: str) -> None:
    """A background loop's failed round: one line while the store is unavailable (the loop says so
    again every round), the traceback for anything else."""
    if store_unavailable(error):
        logger.warning("%s (store unavailable: %s)", what, str(error).splitlines()[0][:200])
    else:
        logger.exception(what)
