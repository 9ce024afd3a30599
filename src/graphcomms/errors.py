"""The one exception tree of graphcomms.

    GraphcommsError
    ├── InvalidRequest            a request body broke the contract (400)
    ├── CallError
    │   ├── CallNotFound          unknown or ended call (404)
    │   ├── CallNotEstablished    media action before the call is up (400)
    │   ├── CallStateConflict     answering a call that is not ringing (400)
    │   └── MediaModeNotSupported IVR action on an app-hosted call (400)
    ├── OperationError
    │   └── OperationNotFound     unknown or finished operation (404)
    ├── ClockError
    │   └── VirtualClockRequired  clock control on a real-time service (400)
    ├── RecordingNotFound         unknown or expired recording (404)
    └── RecordingAccessDenied     wrong recordingAccessToken (401)

The api layer maps each leaf to a status and a Graph error body in one place.
"""

from __future__ import annotations


class GraphcommsError(Exception):
    """Raised for any failure graphcomms reports to a client."""


class InvalidRequest(GraphcommsError):
    """A request broke the API contract: bad JSON, type or limit."""


class CallError(GraphcommsError):
    """A call could not take the action asked of it."""

    def __init__(self, call_id: str, message: str) -> None:
        super().__init__(message)
        self.call_id = call_id


class CallNotFound(CallError):
    """No live call has this id."""

    def __init__(self, call_id: str) -> None:
        super().__init__(call_id, "Call not found.")


class CallNotEstablished(CallError):
    """The call is not established yet, so it has no media."""

    def __init__(self, call_id: str, state: str) -> None:
        super().__init__(call_id, f"Call not established (state is {state}).")


class CallStateConflict(CallError):
    """The action needs another call state (for example answer on an answered call)."""


class MediaModeNotSupported(CallError):
    """The action needs service-hosted media and the call has app-hosted media."""

    def __init__(self, call_id: str, action: str) -> None:
        super().__init__(
            call_id,
            f"{action} is supported only for calls with serviceHostedMediaConfig; "
            "this call uses appHostedMediaConfig.",
        )


class OperationError(GraphcommsError):
    """An operation could not be found or acted on."""


class OperationNotFound(OperationError):
    """No pending operation has this id on this call."""

    def __init__(self, call_id: str, operation_id: str) -> None:
        super().__init__("Operation not found.")
        self.call_id = call_id
        self.operation_id = operation_id


class ClockError(GraphcommsError):
    """The clock could not do what was asked."""


class VirtualClockRequired(ClockError):
    """Clock control needs ``--clock virtual``; this service runs in real time."""

    def __init__(self) -> None:
        super().__init__(
            "The clock can be advanced only when the service runs with --clock virtual."
        )


class RecordingNotFound(GraphcommsError):
    """No recording with this id, or it has expired."""


class RecordingAccessDenied(GraphcommsError):
    """The bearer token is not the recording's recordingAccessToken."""
