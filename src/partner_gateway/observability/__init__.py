"""What an operator sees of a running process: metrics, logs, and the request id that ties them.

    context.py   the request (or delivery) a line of work belongs to: request id, company, message
    metrics.py   the catalogue of Prometheus metrics, each named once, and the calls that move them
    http.py      requests by route and status with their latencies, counted without locks
    scrape.py    what is read at scrape time (outbox and queue depths, carrier sessions), bounded
    logs.py      one text format or JSON lines, the context on every line, the access log

This package imports nothing from the gateway's other layers: every layer may report to it.
docs/operations.md describes every metric and what to do when one looks wrong.
"""
