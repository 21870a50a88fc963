"""200 WebSocket subscribers on one project all receive its final event (loopback only, bounded)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from conftest import Stack
from websockets.asyncio.client import connect

pytestmark = pytest.mark.slow

SUBSCRIBERS = 200


async def _subscribe_all(stack: Stack, project_id: str, trigger: object) -> tuple[list[float], float, float]:
    url = f"{stack.ws}/ws/project/{project_id}?token={stack.key}"
    received: list[float] = []
    connected = 0
    all_connected = asyncio.Event()

    async def subscriber() -> None:
        nonlocal connected
        async with connect(url, open_timeout=60, max_queue=None) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 60))  # the immediate state
            assert first["status"] == "queued"
            connected += 1
            if connected == SUBSCRIBERS:
                all_connected.set()
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if event["status"] == "failed":
                    received.append(time.monotonic())
                    return

    started = time.monotonic()
    tasks = [asyncio.create_task(subscriber()) for _ in range(SUBSCRIBERS)]
    await asyncio.wait_for(all_connected.wait(), 180)
    connect_s = time.monotonic() - started
    sent_at = time.monotonic()
    await asyncio.to_thread(trigger)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*tasks), 180)
    return received, sent_at, connect_s


def test_two_hundred_subscribers_all_get_the_final_event(stack: Stack) -> None:
    client = httpx.Client(base_url=stack.api, headers=stack.headers(), timeout=30)
    junk = b"this is not audio " * 64
    created = client.post(
        "/api/v1/uploads",
        json={"filename": "x.wav", "content_type": "audio/wav", "size": len(junk), "kind": "base-track"},
    )
    assert created.status_code in (200, 201), created.text
    project_id, upload = created.json()["id"], created.json()["upload"]

    def upload_junk() -> None:
        # Ingest refuses it, which ends the project as `failed`: one final event for everyone.
        posted = httpx.post(
            upload["url"], data=upload["fields"], files={"file": ("x.wav", junk, "audio/wav")}
        )
        assert posted.status_code in (200, 201, 204), posted.text

    received, sent_at, connect_s = asyncio.run(_subscribe_all(stack, project_id, upload_junk))
    assert len(received) == SUBSCRIBERS
    spread = max(received) - min(received)
    total = max(received) - sent_at
    print(
        f"\n[fan-out] {SUBSCRIBERS} subscribers connected in {connect_s:.2f} s; final event reached all "
        f"{total:.2f} s after the upload (ingest included); first-to-last spread {spread:.3f} s"
    )
