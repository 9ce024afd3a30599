"""Recordings, served at ``recordingLocation`` to the holder of the token.

Graph's contract: ``GET {recordingLocation}`` with ``Authorization: Bearer
{recordingAccessToken}`` returns the file as ``application/octet-stream``.
The token is compared by the engine and never logged.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from graphcomms.api.http import RequestRejected, canonical_id, runtime_of
from graphcomms.graph.errors import UNAUTHENTICATED

router = APIRouter()


@router.get("/recordings/{op_id}")
async def get_recording(request: Request, op_id: str) -> Response:
    """Return a recording's WAV file to a client holding its access token."""
    token = bearer_token(request)
    path = await runtime_of(request).engine.recording_file(canonical_id(op_id), token)
    return FileResponse(path, media_type="application/octet-stream")


def bearer_token(request: Request) -> str:
    """Return the bearer token of the request.

    Raises:
        RequestRejected: 401, there is no ``Authorization: Bearer`` header.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        challenge = {"WWW-Authenticate": 'Bearer realm="graphcomms recordings"'}
        raise RequestRejected(UNAUTHENTICATED, challenge)
    return token.strip()
