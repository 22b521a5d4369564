"""Work queues for the scale-out mode: due outbox items travel from the relay to the workers.

The database stays the source of truth. The relay publishes due outbox items (`base.WorkItem`, a
small versioned JSON document, never pickle) and a publish returns only once the broker has
confirmed every item. A worker hands the message over, commits the outcome, and only then is
the delivery acknowledged; a handler that raises has its delivery rejected and redelivered
later, and a payload that does not decode goes straight to the dead-letter queue.

Delivery is at least once: a worker that dies after its commit and before its ack, or a publish
retried after a dropped connection, hands the same item over again. Consumers therefore treat
`WorkItem.outbox_id` as the idempotency key (an item whose outcome is already recorded is
acknowledged without being sent again).

`base` holds the broker-neutral contract (`WorkItem`, `WorkQueue`, `DeadLetter`, errors);
`rabbitmq` implements it on RabbitMQ quorum queues (`RabbitWorkQueue`).
"""
