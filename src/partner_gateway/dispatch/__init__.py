"""The delivery pipeline: outbox workers, group commits, report recording, expiry."""
