"""Engine events to commsNotifications, handed to the durable delivery outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from graphcomms.engine.call import Call
from graphcomms.engine.operation import Operation
from graphcomms.graph.render import PARTICIPANTS, render_notification

ChangeType = Literal["created", "updated", "deleted"]


class Outbox(Protocol):
    """Where rendered notifications go: persisted, then delivered in order."""

    def enqueue(self, call_id: str, url: str, payload: dict[str, object]) -> int: ...


class GraphNotifier:
    """Implements the engine's Notifier port with Graph's wire shapes."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def call_changed(self, call: Call, change_type: str, fields: Sequence[str]) -> None:
        """Notify a change of the call itself, on the call's API version."""
        payload = render_notification(
            call, _change(change_type), call, call.api_version, fields=fields
        )
        self._outbox.enqueue(call.id, call.callback_uri, payload)

    def operation_finished(self, call: Call, op: Operation) -> None:
        """Notify an operation's terminal state, on the version it was made on."""
        payload = render_notification(call, "deleted", op, op.api_version)
        self._outbox.enqueue(call.id, call.callback_uri, payload)

    def roster_changed(self, call: Call) -> None:
        """Notify the call's participants roster."""
        payload = render_notification(call, "updated", PARTICIPANTS, call.api_version)
        self._outbox.enqueue(call.id, call.callback_uri, payload)


_CHANGE_TYPES: dict[str, ChangeType] = {
    "created": "created",
    "updated": "updated",
    "deleted": "deleted",
}


def _change(change_type: str) -> ChangeType:
    return _CHANGE_TYPES[change_type]
