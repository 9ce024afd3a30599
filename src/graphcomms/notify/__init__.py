"""Webhook delivery: commsNotifications from the durable outbox to each callback.

Notifications are stored first and POSTed after, per call in order, with
bounded retries; what cannot be delivered stays in the outbox as failed.
"""

from graphcomms.notify.delivery import (
    AttemptOutcome,
    OutboxEntryView,
    OutboxStore,
    RetryPolicy,
    WebhookDelivery,
)

__all__ = [
    "AttemptOutcome",
    "OutboxEntryView",
    "OutboxStore",
    "RetryPolicy",
    "WebhookDelivery",
]
