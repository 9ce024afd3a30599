"""The Graph surface and control surface on a real runtime, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from graphcomms.api.app import create_app
from graphcomms.runtime import Runtime, Settings

CALLS = "/v1.0/communications/calls"
CALL = {
    "callbackUri": "http://127.0.0.1:9/cb",
    "targets": [{"identity": {"user": {"id": "u"}}}],
    "requestedModalities": ["audio"],
    "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(
        Settings(data_dir=tmp_path, clock_mode="virtual", delivery_attempts=1)
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gc") as client:
        await runtime.start()
        try:
            yield client
        finally:
            await runtime.stop()


async def test_ended_call_is_404_whatever_the_body(client: httpx.AsyncClient):
    call_id = (await client.post(CALLS, json=CALL)).json()["id"]
    assert (await client.delete(f"{CALLS}/{call_id}")).status_code == 204
    for body in ({}, {"prompts": "not a list"}, {"prompts": []}):
        response = await client.post(f"{CALLS}/{call_id}/playPrompt", json=body)
        assert response.status_code == 404, body
        assert response.json()["error"]["code"] == "8522"


async def test_pending_notifications_are_listed(client: httpx.AsyncClient):
    await client.post(CALLS, json=CALL)  # its callback refuses connections
    listed = (await client.get("/_sim/notifications?status=pending")).json()
    failed = (await client.get("/_sim/notifications")).json()
    everything = listed["value"] + failed["value"]
    assert everything, "the establishing notification is pending or failed"
    assert all(n["status"] in ("pending", "failed") for n in everything)
    bad = await client.get("/_sim/notifications?status=delivered")
    assert bad.status_code == 400
