"""Fault injection through the control surface (BL-20)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from graphcomms.api.app import create_app
from graphcomms.runtime import Runtime, Settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(Settings(data_dir=tmp_path, clock_mode="virtual"))
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gc") as client:
        yield client
    runtime.store.close()


async def test_api_error_fault_answers_graph_requests_503(client: httpx.AsyncClient):
    put = await client.put("/_sim/faults", json={"apiErrors": 1.0, "seed": 1})
    assert put.status_code == 200 and put.json()["active"] is True

    graph = await client.get("/v1.0/communications/calls/abc")
    assert graph.status_code == 503
    assert graph.json()["error"]["code"] == "serviceNotAvailable"
    assert graph.headers["retry-after"] == "1"
    # the control surface itself is never broken
    assert (await client.get("/_sim/faults")).status_code == 200

    assert (await client.delete("/_sim/faults")).status_code == 204
    after = await client.get("/v1.0/communications/calls/abc")
    assert after.status_code == 404


async def test_faults_with_bad_values_are_400(client: httpx.AsyncClient):
    response = await client.put("/_sim/faults", json={"drop": 2})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "8523"
